"""Evaluation: reconstruction metrics, judges, and content/motion disentanglement metrics."""
