"""Training: ``train()`` and the ``python -m training.train`` entry (training/train.py; options and planning in
training/cli.py), the generic trainer and its checkpoint state, the configs and their options, the run folder."""
