"""Scores of a model's codes against the true factors: MIG (mutual information), SAP, correlation,
linear probes, the factors they are read against, all of them at once (code_metrics) and chance rescaling."""
