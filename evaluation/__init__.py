"""Evaluation: ``pipeline.evaluate`` scores one checkpoint; ``disentanglement`` and ``generation`` gather the
metrics of the sub-packages (reconstruction, codes, judges) and the swap protocol (``swaps``); reporting/ writes them."""
