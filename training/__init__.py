"""Training: ``train()`` (training/train.py; ``python -m training.train`` runs its command line, training/cli.py),
the generic trainer and its checkpoint state, the configs and their options, and the run folder."""
