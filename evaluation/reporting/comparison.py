"""The demo's report: the models side by side on the same test videos, and ``report.md`` / ``report.html``.

:func:`comparison_figures` runs every model on the same test videos (reconstructions, and a content swap
beside its exact ideal render); :func:`write_report` writes the report from the evaluations'
``NAME_metrics.json`` documents (:mod:`evaluation.reporting.report` builds the tables, :mod:`evaluation.reporting.writer`
writes Markdown and HTML).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import torch

from evaluation.metric_names import TABLES
from evaluation.prediction import HORIZON
from evaluation.reporting import report as reports
from evaluation.reporting.prediction_report import (
    prediction_filmstrip,
    prediction_table,
    save_identity_curves,
    standard_table,
)
from evaluation.reporting.writer import Report
from evaluation.swaps import example_pairs, ideal_swap
from evaluation.trained_runs import checkpoint_data_config, load_runs, test_loader
from utils.animation import save_video_gif
from utils.provenance import collect as provenance
from utils.provenance import cpu_description, summary_lines
from utils.visualization import save_frame_grid


def machine_description(device: torch.device) -> str:
    """The CPU (cores, torch threads) and GPU this process runs on, for the report."""
    text = f"{cpu_description()['model']}, {os.cpu_count()} CPU cores, torch {torch.__version__} with {torch.get_num_threads()} threads"
    if device.type == "cuda":
        text += f", GPU {torch.cuda.get_device_name(device)}"
    return text


def comparison_figures(runs: dict[str, str], checkpoint_dir: str | os.PathLike, out: Path, device: torch.device,
                       log: Callable[[str], None] = print, prediction_horizon: int | None = HORIZON) -> list[Path]:
    """Figures that put the models side by side on the same test videos: reconstructions, the content
    swap (A's digits, B's motion) beside its exact ideal render, and (unless ``prediction_horizon`` is None)
    the same test videos predicted to frame ``prediction_horizon``."""
    models, checkpoints = load_runs(runs, checkpoint_dir, device, log=log)
    first = next(iter(checkpoints))
    data_config = checkpoint_data_config(checkpoints[first], models[first])
    dataset = test_loader(data_config).dataset
    (a, b), = example_pairs(3, 1)  # content A = test video 1, motion B = its source under the swap protocol
    batch = dataset[[0, a, b]]
    video = batch["video"].to(device)
    rows = {"ground truth": video[0]}
    swap_rows = {"A (content source)": video[1], "B (motion source)": video[2]}
    if "trajectory" in batch:  # the exact ideal render needs the ground-truth factors
        swap_rows["ideal: A's objects on B's paths"] = ideal_swap(
            dataset.digit_images(batch["digit_ids"][1:2]), batch["trajectory"][2:3], video.shape[-1])[0]
    with torch.no_grad():
        for label, model in models.items():
            rows[label] = model.reconstruct(video[:1])[0]
            swap_rows[label] = model.swap(video[1:2], video[2:3])[0]
    figures = out / "figures"
    predicted = ([] if prediction_horizon is None else
                 prediction_filmstrip(models, dataset, out, device, horizon=prediction_horizon))
    return predicted + [
        save_frame_grid(rows, figures / "reconstructions.png", title=f"The same test video ({data_config.title}), reconstructed"),
        save_video_gif(rows, figures / "reconstructions.gif", labels=list(rows)),
        save_frame_grid(swap_rows, figures / "content_swap.png",
                        title="Content swap: A's content moving like B" + (
                            ", beside the exact ideal render" if "trajectory" in batch else "")),
        save_video_gif(swap_rows, figures / "content_swap.gif", labels=list(swap_rows)),
    ]


def steps_text(records: list[tuple[str, float, float]]) -> str:
    """The optimizer steps the runs trained for, from their ``metrics.csv`` (``(name, steps, seconds)``)."""
    steps = sorted({steps for _, steps, _ in records if steps == steps})  # NaN: no metrics.csv
    if not steps:
        return "an unknown number of optimizer steps (no metrics.csv beside the checkpoints)"
    if len(steps) == 1:
        return f"{steps[0]:,.0f} optimizer steps each"
    return f"{steps[0]:,.0f} to {steps[-1]:,.0f} optimizer steps"


def write_report(documents: list[dict], out: Path, checkpoint_dir: str | os.PathLike, timings: dict[str, float],
                 device: torch.device, amp: bool, judge_accuracy: dict, run_dirs: list[str],
                 stages: pd.DataFrame | None = None) -> list[Path]:
    grouped = reports.group_by_model(documents)
    records = [(name, *reports.training_record(Path(checkpoint_dir) / name)) for name in run_dirs]
    data = data_of(documents)
    report = Report(f"Content-motion VAEs on {data['title']}: measured comparison", out)
    total_minutes = sum(timings.values()) / 60
    report.paragraph(
        f"Written by `python demo.py` on {datetime.date.today().isoformat()} on {machine_description(device)} "
        f"(device {device}{', bf16 autocast' if amp else ''}); the whole run took {total_minutes:.1f} minutes "
        f"({', '.join(f'{stage} {seconds / 60:.1f}' for stage, seconds in timings.items())} min). "
        f"Every number below was measured in this run, on the checkpoints listed; as stored in them, the "
        f"models were trained for {steps_text(records)}: {reports.trained_settings(documents)}. "
        "A CPU-sized budget trains far less than the design document's 100 epochs: read the numbers as a "
        "comparison at equal (small) compute, not as converged results."
    )
    report.paragraph("Training of each run (from its `metrics.csv`): " + "; ".join(
        f"`{name}` {steps:,.0f} steps in {seconds / 60:.1f} min" for name, steps, seconds in records) + ".")
    report.paragraph("Provenance (also in every `eval/NAME_metrics.json`, under `metadata.provenance`):")
    report.bullets(summary_lines(provenance()))
    if data.get("class_names"):
        report.paragraph(f"Data: {data['title']}; the ten classes the judges read: "
                         f"{', '.join(data['class_names'])}.")
    if not data.get("has_factors", True):
        _factor_free_sections(report, grouped, documents, data)
        return _figures_and_files(report, grouped, out, stages)
    report.heading("The design document's hypotheses against the measurements")
    expected = reports.expected_vs_measured(grouped)
    if not expected.empty:
        report.table(expected)
        report.paragraph(
            "Rules: MSE and SSIM expect the LSTM-VAE best and the Disentangled VAE within 10% (MSE) or 0.01 "
            "(SSIM) of the Baseline. Content swap scores the judged digit accuracy of `combine(content A, motion "
            "B)` against A's digits, motion swap the judged correlation of its paths with B's, both rescaled so "
            "that chance is 0 and perfect is 1, then labelled Clean (>= 0.8), Partial (>= 0.3) or Fails. "
            "Disentanglement compares the ordering of `overall_disentanglement`. Where a row says 'does not "
            "hold', the measurement contradicts the design document's expectation."
        )
    titles = {
        "reconstruction": "Reconstruction quality (test videos)",
        "disentanglement": "Disentanglement of the content and motion codes",
        "swaps": "Swaps, resampling and samples, read by the judges",
        "generation": "Generation: samples and conditional resampling against real videos (judge features)",
        "cost": "Cost",
    }
    for name, rows in TABLES.items():
        report.heading(titles[name])
        report.table(reports.table(grouped, rows))
        if name == "swaps" and judge_accuracy:
            report.paragraph(
                "The judges are small networks trained on real videos (train digit pool) and measured on real "
                f"test videos: digit accuracy {judge_accuracy.get('content_digit_accuracy', float('nan')):.3f}, "
                f"mean path error {judge_accuracy.get('motion_trajectory_error_px', float('nan')):.2f} px. "
                "A judged number can be no better than that reading of real videos."
            )
        if name == "generation":
            report.paragraph(
                "Features: the judges' (FVD's I3D weights cannot be downloaded here). 'Real vs real' compares "
                "two halves of the test videos: a floor for the distances, a ceiling for the scores. Priors of "
                f"the samples: {'; '.join(_prior_words(grouped))}. Formulas: `evaluation/generation.py`."
            )
    _prediction_section(report, grouped, out)
    report.paragraph(
        "Definitions: every metric, with its formula, is documented in `evaluation/reconstruction/metrics.py` (reconstruction) "
        "and `evaluation/disentanglement.py` (disentanglement, swaps); `docs/metrics.md` lists them too. Baseline VAE "
        "and LSTM-VAE have no explicit split: their content code is the time-average of the per-frame latent "
        "means and their motion code each frame's deviation from it."
    )
    return _figures_and_files(report, grouped, out, stages)


def data_of(documents: list[dict]) -> dict:
    """The evaluated data (``metadata.data`` of :func:`evaluation.pipeline.data_description`) of the first
    document; documents written before it are Moving MNIST with factors."""
    for document in documents:
        data = document.get("metadata", {}).get("data")
        if data:
            return data
    return {"name": "mnist", "title": "Moving MNIST", "class_names": None, "has_factors": True}


def _factor_free_sections(report: Report, grouped: Mapping[str, list], documents: list[dict], data: dict) -> None:
    """The report's tables for data without ground-truth factors: what needs no labels, then the metrics
    that cannot be computed, each listed once."""
    titles = {"reconstruction": "Reconstruction quality (test videos)",
              "pixel_generation": "Generation without labels: pixel statistics of samples and conditional "
                                  "resampling against real videos",
              "cost": "Cost"}
    report.paragraph(f"The videos ({data.get('video_file')}, layout {data.get('video_layout')}; {data.get('split')}) "
                     "have no ground-truth factors: there are no judges, probes, SAP or MIG. Everything that needs "
                     "no labels is below.")
    for name, rows in reports.tables_for(documents).items():
        report.heading(titles[name])
        report.table(reports.table(grouped, rows))
        if name == "pixel_generation":
            report.paragraph(
                "Features: no network, on purpose (nothing to train or download, and nothing learned to trust): "
                "per video the time-averaged frame pooled to 8x8, its mean intensity, the share of pixels above "
                "0.5 and the mean absolute frame difference. They measure brightness, coverage, layout and the "
                "amount of motion, not identity or shape. 'Real vs real' compares two halves of the test "
                "videos (the floor of the distance). Formulas: `evaluation/pixel_generation.py`.")
    predicted = [document["prediction"] for document in documents if document.get("prediction")]
    if predicted:
        report.heading("Prediction: 10 observed frames, 10 predicted")
        report.paragraph(f"On {predicted[0]['test_set']['words']} ({predicted[0]['num_videos']} videos), the "
                         "deterministic prediction; MSE and MAE per frame are sums over a frame's pixels, averaged "
                         "over frames and videos (OpenSTL's convention). Formulas: `evaluation/prediction.py`.")
        report.table(standard_table(grouped))
    report.heading("Not available")
    report.bullets(reports.not_available(documents))


def _figures_and_files(report: Report, grouped: Mapping[str, list], out: Path,
                       stages: pd.DataFrame | None = None) -> list[Path]:
    report.heading("Figures")
    figures = out / "figures"
    for path, caption in (
        (figures / "training_curves.png", "Training curves (train solid, validation dashed)"),
        (figures / "reconstructions.png", "One test video reconstructed by each model"),
        (figures / "content_swap.png", "Content swap: A's content moving like B (beside the exact ideal render "
                                       "where the data has factors)"),
    ):
        if path.exists():
            report.image(path, caption)
    report.links([("reconstructions.gif", figures / "reconstructions.gif"),
                  ("content_swap.gif", figures / "content_swap.gif")])
    for model_name, documents in grouped.items():
        name = documents[0].get("experiment_name")
        report.heading(f"{model_name} ({name})", level=3)
        evaluation_dir = out / "eval"
        for suffix, caption in (("samples_vs_real", "real test videos above samples from the prior"),
                                ("factor_grid", "rows share content, columns share motion (both from the prior)"),
                                ("content_swap", "swap matrix"),
                                ("interpolation", "content and motion interpolation")):
            path = evaluation_dir / f"{name}_{suffix}.png"
            if path.exists():
                report.image(path, f"{model_name}: {caption}")
        report.links([(f"{suffix}.gif", evaluation_dir / f"{name}_{suffix}.gif")
                      for suffix in ("reconstructions", "samples", "factor_grid", "swaps")
                      if (evaluation_dir / f"{name}_{suffix}.gif").exists()])
    if stages is not None:
        report.heading("Where the time went")
        report.paragraph("Wall-clock seconds of each stage of this run (an evaluation's parts are inside it; "
                         "`training NAME` excludes its ex-post prior fit, which has its own row).")
        report.table(stages)
    report.heading("Files")
    report.bullets([
        "`eval/NAME_metrics.json`: every metric of every run (NaN kept), with the configs and the provenance",
        "`figures/` and `eval/`: every figure as PNG and PDF; the animations as GIF (and MP4 where "
        "imageio-ffmpeg is installed)",
        "`tables/`: `comparison_results.json`, `disentanglement_metrics.json` and each table as Markdown and LaTeX",
        "`checkpoints/NAME/`: `best_model.pt`, `last.pt`, `metrics.csv`, TensorBoard logs",
    ])
    return report.write()


def _prior_words(grouped: Mapping[str, list]) -> list[str]:
    """``"RUN: content WORDS, motion WORDS"`` for each run group, from its evaluations' ``generation.prior``
    (the distinct descriptions, where seeds differ)."""
    words = []
    for label, documents in grouped.items():
        described = {(str(prior.get("content", "n/a")), str(prior.get("motion", "n/a")))
                     for prior in (document.get("generation", {}).get("prior", {}) for document in documents)}
        words += [f"{label}: content {content}, motion {motion}" for content, motion in sorted(described)]
    return words


def _prediction_section(report: Report, grouped: Mapping[str, list], out: Path) -> None:
    """The 10 -> 10 table beside the published one, how each model predicts, the identity curves and the
    filmstrip (issue 30)."""
    documents = [document for group in grouped.values() for document in group]
    if not any(document.get("prediction") for document in documents):
        return
    report.heading("Prediction: 10 observed frames, 10 predicted; and the long horizon")
    first = next(document["prediction"] for document in documents if document.get("prediction"))
    report.paragraph(
        f"Our numbers: {first.get('test_set', {}).get('words', 'n/a')}, {first.get('num_videos', '?')} videos, "
        "the deterministic prediction (mean or mode path); best of N: the sample with the highest SSIM per video "
        "(SVG's protocol). MSE and MAE per frame are sums over a frame's pixels (64x64 in the protocol: compare "
        "only 64x64 runs with the published rows), averaged over frames and videos (OpenSTL's convention); 'SSIM 7x7' is the box window OpenSTL reports, 'SSIM Gaussian' Wang et al.'s. "
        "The published rows were measured on the standard test file with GPU budgets of 10^5 steps and more; "
        "ours on the budget named in each row. Formulas: `evaluation/prediction.py`."
    )
    report.table(prediction_table(grouped))
    report.bullets([f"{label}: {group[0]['prediction'].get('method', 'n/a')}"
                    for label, group in grouped.items() if group[0].get("prediction")])
    figures = out / "figures"
    curves = save_identity_curves(grouped, figures / "prediction_curves.png")
    if curves is not None:
        long = next((d["prediction"]["long_horizon"] for d in documents
                     if (d.get("prediction") or {}).get("long_horizon")), {})
        report.image(curves, f"Per window of 10 predicted frames ({long.get('num_videos', '?')} generator test "
                             "videos): the judges' order-free digit identity, their path error, the Fréchet "
                             "distance of judge features to real frames at the same window, and the W1 distance "
                             "of the judged speeds to the real frames' (the deterministic prediction, and one "
                             "stochastic draw dashed)")
    if (figures / "prediction_filmstrip.png").exists():
        report.image(figures / "prediction_filmstrip.png", "The same test videos predicted by every model")
        report.links([("prediction.gif", figures / "prediction.gif")])
