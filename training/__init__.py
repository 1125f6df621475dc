"""Training: configs, the generic trainer, checkpoints and the ``python -m training.train`` CLI."""
