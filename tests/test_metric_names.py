"""Tests of the metric registry (evaluation/metric_names.py) and the models' display names it sits beside."""

from __future__ import annotations

import math

from evaluation import metric_names
from evaluation.metric_names import METRICS, TABLES, Metric, metric_value
from evaluation.reporting import report
from models import MODELS


def test_every_metric_is_registered_once_with_a_label_format_and_direction():
    registered = (metric_names.RECONSTRUCTION + metric_names.CODE + metric_names.FIDELITY + metric_names.JUDGED
                  + metric_names.LOCALISATION + metric_names.GENERATION + metric_names.PIXEL_GENERATION + metric_names.COST
                  + metric_names.TRAINING)
    assert len({metric.key for metric in registered}) == len(registered) == len(METRICS)
    for metric in registered:
        assert metric.label and format(1234.5, metric.fmt) and metric.better in ("higher", "lower", "")


def test_tables_and_json_keys_come_from_the_registry():
    assert all(isinstance(row, Metric) and METRICS[row.key] is row for rows in TABLES.values() for row in rows)
    assert list(TABLES) == ["reconstruction", "disentanglement", "swaps", "generation", "cost"]
    assert metric_names.RECONSTRUCTION_OUTPUT_KEYS[-1] == "num_videos"
    assert metric_names.DISENTANGLEMENT_OUTPUT_KEYS[-3:] == ("num_videos", "num_frames", "notes")
    assert {"content_swap_score", "motion_swap_score", "swap_quality"} <= set(metric_names.JUDGED_KEYS)


def test_metric_value_reads_numbers_only():
    values = {"mse": 0.5, "num_videos": 3, "flag": True, "notes": ["a"]}
    assert metric_value(values, "mse") == 0.5 and metric_value(values, "num_videos") == 3.0
    assert all(math.isnan(metric_value(values, key)) for key in ("flag", "notes", "missing"))


def test_display_names_come_from_the_model_classes():
    assert {name: model.display_name for name, model in MODELS.items()} == {
        "baseline": "Baseline VAE", "lstm": "LSTM-VAE", "disentangled": "Disentangled VAE"}
    assert report.DISPLAY_NAMES == {name: model.display_name for name, model in MODELS.items()}
    assert report.display_name("lstm") == "LSTM-VAE" and report.display_name("other") == "other"
