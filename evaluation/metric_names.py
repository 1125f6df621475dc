"""The metric registry: per metric its JSON key, section, label, number format and better direction.

One :class:`Metric` per number that ``evaluate.py`` writes (``NAME_metrics.json``) or the report adds
(training time). Everything that names metrics reads it: the JSON key tuples of
:mod:`evaluation.reconstruction.metrics` and :mod:`evaluation.disentanglement` (whose order is the order of their
outputs), the tables of :mod:`evaluation.reporting.report` and ``summarize.py`` (``TABLES``). The definitions of
the numbers are in those modules' docstrings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """One metric: where its value lives in a metrics document, its label, format and direction.

    Attributes:
        section: The document's section (``"reconstruction"``, ``"disentanglement"``, ``"generation"``,
            ``"cost"`` or ``"training"``).
        key: Its JSON key within the section.
        label: How tables name it.
        fmt: Python format spec of its values in tables.
        better: ``"higher"``, ``"lower"`` or ``""`` (a reference value: a chance level, a judge's ceiling).
    """

    section: str
    key: str
    label: str
    fmt: str = ".4f"
    better: str = ""


def _section(section: str, *rows: tuple[str, str, str, str]) -> tuple[Metric, ...]:
    """``(key, label, fmt, better)`` rows of one section as metrics."""
    return tuple(Metric(section, key, label, fmt, better) for key, label, fmt, better in rows)


RECONSTRUCTION = _section(
    "reconstruction",
    ("mse", "MSE per pixel", ".6f", "lower"),
    ("mse_per_frame", "MSE per frame (sum over pixels)", ".2f", "lower"),
    ("mae_per_frame", "MAE per frame (sum over pixels)", ".2f", "lower"),
    ("bce_per_frame", "BCE per frame (sum over pixels, nats)", ".2f", "lower"),
    ("psnr", "PSNR (dB)", ".2f", "higher"),
    ("ssim", "SSIM (Gaussian 11x11)", ".4f", "higher"),
    ("ssim_uniform", "SSIM (7x7 box, as OpenSTL)", ".4f", "higher"),
    ("temporal_consistency", "Temporal consistency", ".6f", "lower"),
)
CODE = _section(
    "disentanglement",
    ("sap_content_content", "SAP: content code -> content", ".3f", "higher"),
    ("sap_content_motion", "SAP: content code -> motion", ".3f", "lower"),
    ("sap_motion_motion", "SAP: motion code -> motion", ".3f", "higher"),
    ("sap_motion_content", "SAP: motion code -> content", ".3f", "lower"),
    ("sap_disentanglement", "SAP (top-two gap, all factors)", ".3f", "higher"),
    ("sap_content", "SAP (top-two gap, content factors)", ".3f", "higher"),
    ("sap_motion", "SAP (top-two gap, motion factors)", ".3f", "higher"),
    ("mig", "MIG (all factors)", ".3f", "higher"),
    ("mig_content", "MIG (content factors)", ".3f", "higher"),
    ("mig_motion", "MIG (motion factors)", ".3f", "higher"),
    ("mean_abs_correlation", "Mean |corr(content, motion)|", ".3f", "lower"),
    ("max_abs_correlation", "Max |corr(content, motion)|", ".3f", "lower"),
    ("correlation_chance", "  chance level of |corr|", ".3f", ""),
    ("probe_content_from_content", "Probe: digits from content code", ".3f", "higher"),
    ("probe_content_from_motion", "Probe: digits from motion code", ".3f", "lower"),
    ("probe_content_chance", "  chance level of the digit probes", ".3f", ""),
    ("probe_motion_from_motion", "Probe: positions from motion code (R^2)", ".3f", "higher"),
    ("probe_motion_from_content", "Probe: positions from content code (R^2)", ".3f", "lower"),
    ("probe_motion_chance", "  chance level of the position probes (R^2)", ".3f", ""),
    ("overall_disentanglement", "Overall (prediction) disentanglement", ".3f", "higher"),
)
FIDELITY = _section(
    "disentanglement",
    ("swap_fidelity_psnr", "Swap fidelity vs ideal render: PSNR (dB)", ".2f", "higher"),
    ("swap_fidelity_ssim", "Swap fidelity vs ideal render: SSIM", ".4f", "higher"),
)
JUDGED = _section(
    "disentanglement",
    ("judge_content_digit_accuracy", "Judge on real test videos: digit accuracy", ".3f", ""),
    ("judge_motion_trajectory_error_px", "Judge on real test videos: path error (px)", ".2f", ""),
    ("recon_content_accuracy", "Reconstruction: digits read (judged)", ".3f", "higher"),
    ("recon_trajectory_error_px", "Reconstruction: path error (px)", ".2f", "lower"),
    ("content_accuracy_chance", "  chance level of digit accuracy", ".3f", ""),
    ("trajectory_error_chance_px", "  chance level of path error (px)", ".2f", ""),
    ("content_preservation", "Swap: A's digits kept (judged accuracy)", ".3f", "higher"),
    ("content_preservation_close_start", "  ... on videos whose digits start within 10 px", ".3f", "higher"),
    ("recon_content_accuracy_close_start", "Reconstruction: digits read, digits start within 10 px", ".3f",
     "higher"),
    ("close_start_share", "  share of test videos whose digits start within 10 px", ".3f", ""),
    ("swap_content_leak_accuracy", "Swap: B's digits leaked (judged accuracy)", ".3f", "lower"),
    ("swap_trajectory_error_px", "Swap: error to B's paths (px)", ".2f", "lower"),
    ("motion_correlation", "Swap: follows B's paths (judged r)", ".3f", "higher"),
    ("motion_correlation_chance", "  chance level of r", ".3f", ""),
    ("swap_quality", "Swap quality (both halves, chance-rescaled)", ".3f", "higher"),
    ("resample_motion_content_accuracy", "New motion from prior: digits kept", ".3f", "higher"),
    ("resample_motion_trajectory_error_px", "New motion from prior: path change (px)", ".2f", "higher"),
    ("resample_content_trajectory_error_px", "New content from prior: path error (px)", ".2f", "lower"),
    ("resample_content_content_accuracy", "New content from prior: digits kept", ".3f", "lower"),
    ("sample_inception_score", "Samples: Inception Score (judge)", ".2f", "higher"),
    ("sample_entropy_conditional", "Samples: H(y|x) (nats)", ".3f", "lower"),
    ("sample_entropy_marginal", "Samples: H(y) (nats)", ".3f", "higher"),
    ("content_swap_score", "Content swap: digits kept (chance-rescaled)", ".3f", "higher"),
    ("motion_swap_score", "Motion swap: follows B's paths (chance-rescaled)", ".3f", "higher"),
)
LOCALISATION = _section(
    "disentanglement",
    ("localisation_median_error_px", "Slot positions: median error to the digits' ink centres (px)", ".2f", "lower"),
    ("localisation_p90_error_px", "Slot positions: 90th percentile error (px)", ".2f", "lower"),
    ("localisation_slot_consistency", "Slot positions: a slot keeps its digit (share of videos)", ".3f", "higher"),
)
# evaluation.generation: judge-feature distances of generated videos to real ones, per mode; "real_" is the
# real-vs-real reference (a floor for distances, a ceiling for scores), "reconstruction_" the model's own
# reconstructions (the best its decoder draws from codes its encoder made: a ceiling for its samples).
_MODES = (("prior", "Samples"), ("new_motion", "New motion for A's content"),
          ("new_content", "New content for A's motion"), ("real", "Real vs real (reference)"),
          ("reconstruction", "Reconstructions (the decoder's ceiling)"))
_REFERENCE_MODES = ("real", "reconstruction")
GENERATION = _section(
    "generation",
    *[row for mode, name in _MODES for row in (
        (f"{mode}_frechet_distance", f"{name}: Fréchet judge distance", ".3f", "" if mode in _REFERENCE_MODES else "lower"),
        (f"{mode}_precision", f"{name}: precision (k=3)", ".3f", "" if mode in _REFERENCE_MODES else "higher"),
        (f"{mode}_recall", f"{name}: recall (k=3)", ".3f", "" if mode in _REFERENCE_MODES else "higher"),
        (f"{mode}_inception_score", f"{name}: Inception Score (judge)", ".2f", "" if mode in _REFERENCE_MODES else "higher"),
        (f"{mode}_entropy_conditional", f"{name}: H(y|x) (nats)", ".3f", "" if mode in _REFERENCE_MODES else "lower"),
        (f"{mode}_identity_consistency", f"{name}: identity consistency over frames", ".3f",
         "" if mode in _REFERENCE_MODES else "higher"),
        (f"{mode}_speed_w1_px", f"{name}: W1 of per-frame speeds (px)", ".3f", "" if mode in _REFERENCE_MODES else "lower"),
        (f"{mode}_bounce_rate", f"{name}: bounce rate", ".4f", ""),
    )],
    ("prior_entropy_marginal", "Samples: H(y) (nats)", ".3f", "higher"),
    ("real_entropy_marginal", "Real vs real (reference): H(y) (nats)", ".3f", ""),
    ("prior_mean_speed_px", "Samples: mean speed (px/frame)", ".2f", ""),
    ("real_mean_speed_px", "Real vs real (reference): mean speed (px/frame)", ".2f", ""),
)
# evaluation.pixel_generation: what needs no labels (data without ground-truth factors): pixel statistics.
PIXEL_GENERATION = _section(
    "pixel_generation",
    *[row for mode, name in _MODES for row in (
        (f"{mode}_pixel_frechet_distance", f"{name}: Fréchet distance of pixel statistics", ".4f",
         "" if mode in _REFERENCE_MODES else "lower"),
        (f"{mode}_mean_intensity", f"{name}: mean intensity", ".4f", ""),
        (f"{mode}_ink_fraction", f"{name}: share of pixels > 0.5", ".4f", ""),
        (f"{mode}_motion_energy", f"{name}: mean absolute frame difference", ".4f", ""),
    )],
)
COST = _section(
    "cost",
    ("trainable_parameters", "Trainable parameters", ",.0f", ""),
    ("forward_time_ms", "Forward (reconstruct) time per batch (ms)", ".1f", "lower"),
    ("generation_time_ms", "Generation (sample) time per batch (ms)", ".1f", "lower"),
)
TRAINING = _section(
    "training",
    ("epochs", "Training epochs of the evaluated checkpoint", ".0f", ""),
    ("steps", "Training steps of the evaluated checkpoint", ",.0f", ""),
    ("minutes", "Training time of the whole run (min)", ".1f", ""),
)
METRICS: dict[str, Metric] = {
    metric.key: metric
    for metric in (RECONSTRUCTION + CODE + FIDELITY + JUDGED + LOCALISATION + GENERATION + PIXEL_GENERATION + COST
                   + TRAINING)
}


def metric_value(values: Mapping[str, Any], key: str) -> float:
    """The number stored under ``key`` in a metrics section (NaN when missing or not a number)."""
    value = values.get(key, math.nan)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def keys(metrics: tuple[Metric, ...]) -> tuple[str, ...]:
    """The JSON keys of some metrics, in their order."""
    return tuple(metric.key for metric in metrics)


def rows(*names: str) -> tuple[Metric, ...]:
    """The registered metrics of these keys, in this order (a table's rows)."""
    return tuple(METRICS[name] for name in names)


# JSON keys, in the order the metric functions return them.
RECONSTRUCTION_KEYS = keys(RECONSTRUCTION)  # the per-video means of evaluation.reconstruction.metrics
RECONSTRUCTION_OUTPUT_KEYS = RECONSTRUCTION_KEYS + ("num_videos",)  # evaluate.py's "reconstruction" section
CODE_KEYS = keys(CODE)
FIDELITY_KEYS = keys(FIDELITY)
JUDGED_KEYS = keys(JUDGED)
LOCALISATION_KEYS = keys(LOCALISATION)
DISENTANGLEMENT_OUTPUT_KEYS = CODE_KEYS + FIDELITY_KEYS + JUDGED_KEYS + LOCALISATION_KEYS + (
    "num_videos", "num_frames", "notes")
GENERATION_KEYS = keys(GENERATION)  # evaluate.py's "generation" section adds prior, num_videos and notes

# The report's tables (table_NAME.md / .tex), row by row.
TABLES: dict[str, tuple[Metric, ...]] = {
    "reconstruction": rows("mse", "mse_per_frame", "mae_per_frame", "psnr", "ssim", "ssim_uniform",
                           "temporal_consistency"),
    "disentanglement": rows(
        "sap_content_content", "sap_content_motion", "sap_motion_motion", "sap_motion_content",
        "sap_disentanglement", "mig", "mig_content", "mig_motion", "mean_abs_correlation", "max_abs_correlation",
        "correlation_chance", "probe_content_from_content", "probe_content_from_motion", "probe_content_chance",
        "probe_motion_from_motion", "probe_motion_from_content", "overall_disentanglement",
    ),
    "swaps": rows(
        "content_preservation", "content_preservation_close_start", "recon_content_accuracy_close_start",
        "close_start_share", "swap_content_leak_accuracy", "content_accuracy_chance", "motion_correlation",
        "motion_correlation_chance", "swap_trajectory_error_px", "trajectory_error_chance_px", "swap_quality",
        "swap_fidelity_psnr", "swap_fidelity_ssim", "resample_motion_content_accuracy",
        "resample_motion_trajectory_error_px", "resample_content_trajectory_error_px",
        "resample_content_content_accuracy", "recon_content_accuracy", "recon_trajectory_error_px",
        "sample_inception_score", "sample_entropy_conditional", "sample_entropy_marginal",
        "judge_content_digit_accuracy", "judge_motion_trajectory_error_px", "localisation_median_error_px",
        "localisation_p90_error_px", "localisation_slot_consistency",
    ),
    # Each quantity with its two references first (real vs real, reconstructions), then the three modes.
    "generation": tuple(
        METRICS[f"{mode}_{quantity}"]
        for quantity in ("frechet_distance", "precision", "recall", "inception_score", "entropy_conditional",
                         "entropy_marginal", "identity_consistency", "speed_w1_px", "mean_speed_px", "bounce_rate")
        for mode in ("real", "reconstruction", "prior", "new_motion", "new_content")
        if f"{mode}_{quantity}" in METRICS
    ),
    "cost": rows("trainable_parameters", "forward_time_ms", "generation_time_ms", "epochs", "steps", "minutes"),
}

# Data without ground-truth factors (a --video-file): what cannot be computed, listed once with the reason,
# and the tables of what can.
NO_FACTORS = "not available: the data has no ground-truth factors"
NEEDS_FACTORS: tuple[Metric, ...] = CODE + FIDELITY + JUDGED + LOCALISATION + GENERATION
FACTOR_FREE_TABLES: dict[str, tuple[Metric, ...]] = {
    "reconstruction": TABLES["reconstruction"],
    "pixel_generation": tuple(
        METRICS[f"{mode}_{quantity}"]
        for quantity in ("pixel_frechet_distance", "mean_intensity", "ink_fraction", "motion_energy")
        for mode in ("real", "reconstruction", "prior", "new_motion", "new_content")
    ),
    "cost": TABLES["cost"],
}
