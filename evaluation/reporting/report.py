"""Turn saved evaluation results (``NAME_metrics.json`` from ``evaluate.py``) into tables and a report.

Several runs of one model with the same settings (different seeds) are aggregated as mean ± standard
deviation (sample std, ``ddof=1``; a single run shows its value alone); runs of one model with different
settings (an ablation) are reported side by side, never averaged (``group_by_model``). Every number comes
from the JSON files: nothing here is expected or hard-coded, and a value that is missing or not finite is
shown as ``n/a`` or ``nan``. The tables' rows (label, format, better direction) come from the metric
registry (:data:`evaluation.metric_names.TABLES`), the models' display names from ``models.MODELS``, and the
Markdown/HTML writer is :class:`evaluation.reporting.writer.Report`.

The design document's interface is kept: ``comparison_results.json`` maps a model's display name
("Baseline VAE", "LSTM-VAE", "Disentangled VAE") to its reconstruction metrics and cost, and
``disentanglement_metrics.json`` holds the Disentangled VAE's metrics at the top level, with every model's
under ``by_model``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.metric_names import (
    FACTOR_FREE_TABLES,
    METRICS,
    NEEDS_FACTORS,
    NO_FACTORS,
    TABLES,
    Metric,
    metric_value,
)
from evaluation.reporting.writer import markdown_table
from evaluation.swaps import swap_score
from models import MODELS
from models.checkpoint import EXPERIMENT_FIELDS, RunFiles
from utils.atomic import atomic_write_json, atomic_write_text

# The registry's display names, in its order (baseline, lstm, disentangled).
DISPLAY_NAMES = {name: model.display_name for name, model in MODELS.items()}


# ----------------------------------------------------------------------------------------------------
# Loading and aggregating


# What write_summary writes (and the design document's own summary script): never read back as a run,
# although disentanglement_metrics.json matches *_metrics.json.
SUMMARY_FILES = ("comparison_results.json", "disentanglement_metrics.json")
# The sections of a metrics document that the tables read (a null one reads as empty: its cells are blank).
SECTIONS = tuple(dict.fromkeys(metric.section for rows in TABLES.values() for metric in rows))


def load_results(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """Read ``NAME_metrics.json`` documents (files, or folders searched for ``*_metrics.json``, leaving out
    the summary files of :data:`SUMMARY_FILES` that :func:`write_summary` writes there). A section of
    :data:`SECTIONS` that is null (not evaluated) reads as empty, and is listed in the document's
    ``missing_sections``.

    Raises:
        FileNotFoundError: a path does not exist, or no metrics file was found.
        ValueError: a file is not an evaluate.py metrics document.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(file for file in path.glob("*_metrics.json") if file.name not in SUMMARY_FILES)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    if not files:
        raise FileNotFoundError(
            f"no *_metrics.json in {', '.join(map(str, paths))}; write them with "
            "`python evaluate.py --checkpoint ... --save_dir DIR`"
        )
    documents = []
    for file in files:
        try:
            document = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{file} is not readable JSON: {error}") from error
        if not isinstance(document, dict) or "model_name" not in document or "reconstruction" not in document:
            raise ValueError(f"{file} is not an evaluate.py metrics file (no model_name / reconstruction)")
        document.setdefault("source", str(file))
        # A section that is null or not an object (e.g. "generation": null) holds no metrics: read as empty.
        document["missing_sections"] = [section for section in SECTIONS
                                         if section in document and not isinstance(document[section], Mapping)]
        for section in document["missing_sections"]:
            document[section] = {}
        document["training"] = training_summary(document)
        documents.append(document)
    return documents


def run_identity(document: Mapping[str, Any]) -> tuple:
    """What a document evaluated: its checkpoint's weights (``metadata.weights_sha256``: the same run
    whatever else its file holds, e.g. a refitted prior); for files written before that hash was recorded,
    the checkpoint file's hash (``checkpoint_sha256``), else its path, epoch and step; for a document
    without a checkpoint, its own file."""
    metadata = document.get("metadata", {})
    if metadata.get("weights_sha256"):
        return ("weights", metadata["weights_sha256"])
    if metadata.get("checkpoint_sha256"):
        return ("sha256", metadata["checkpoint_sha256"])
    if metadata.get("checkpoint"):
        return ("path", metadata["checkpoint"], metadata.get("epoch"), metadata.get("step"))
    return ("file", document.get("source"))


def distinct_runs(documents: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """One document per evaluated checkpoint: repeat evaluations (a copied file, the same run evaluated
    again on other test videos) are not seeds, so only one of them is kept: the one on the most test
    videos, then the latest.

    Returns:
        ``(the documents kept, in their order; one note per document left out, naming both files)``.
    """
    def preference(document: Mapping[str, Any]) -> tuple:
        videos = document.get("reconstruction", {}).get("num_videos")
        return (videos if isinstance(videos, (int, float)) else -1, str(document.get("metadata", {}).get("date", "")))

    best: dict[tuple, dict[str, Any]] = {}
    for document in documents:
        identity = run_identity(document)
        if identity not in best or preference(document) > preference(best[identity]):
            best[identity] = document
    kept = [document for document in documents if best[run_identity(document)] is document]
    notes = [f"{document.get('source')} evaluates the same checkpoint as {best[run_identity(document)].get('source')}"
             " (a repeat evaluation, not another seed): left out" for document in documents
             if best[run_identity(document)] is not document]
    return kept, notes


def training_summary(document: Mapping[str, Any]) -> dict[str, float]:
    """Epochs and steps of the evaluated checkpoint and the training time, from its run's ``metrics.csv``
    (the sum of the per-epoch ``seconds``; NaN when the file is not beside the checkpoint)."""
    metadata = document.get("metadata", {})
    summary = {"epochs": metadata.get("epoch", math.nan), "steps": metadata.get("step", math.nan),
               "minutes": math.nan}
    checkpoint = metadata.get("checkpoint")
    if checkpoint:
        summary["minutes"] = training_record(Path(checkpoint).parent)[1] / 60
    return {key: float(value) if isinstance(value, (int, float)) else math.nan for key, value in summary.items()}


def training_record(run_dir: str | Path) -> tuple[float, float]:
    """``(optimizer steps, seconds of training)`` of a run folder: its ``metrics.csv``'s last step and the sum
    of the per-epoch ``seconds`` (NaN for both when the file is missing or unreadable)."""
    try:
        history = pd.read_csv(Path(run_dir) / RunFiles.METRICS)
        return float(history["step"].iloc[-1]), float(history["seconds"].sum())
    except (OSError, ValueError, KeyError, IndexError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return math.nan, math.nan


def experiment_settings(document: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that define a run's experiment (``model_config`` and the fields of
    :data:`models.checkpoint.EXPERIMENT_FIELDS`), flat; a model field without effect on the model
    (``idle_fields``, e.g. an option of another architecture) reads :data:`IDLE`."""
    metadata = document.get("metadata", {})
    settings = dict(metadata.get("model_config", {}))
    for name in _idle_fields(document.get("model_name"), settings):
        settings[name] = IDLE
    for section, names in EXPERIMENT_FIELDS.items():
        values = metadata.get(section, {})
        settings.update({name: values[name] for name in names if name in values and name not in settings})
    return settings


IDLE = "(no effect)"  # experiment_settings' value of a model field that does not act on the run's model


def _idle_fields(model_name: Any, model_config: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields of a stored model config that have no effect on its model (none where it does not build)."""
    try:
        return MODELS[model_name].config_class(**model_config).idle_fields()
    except (KeyError, TypeError, ValueError):
        return ()


# The settings a report states, as (config, field, template, number format): read from the evaluated
# checkpoints' configs, never from the command that asked for them.
TRAINED_SETTINGS = (
    ("data_config", "num_frames", "{} frames", ""),
    ("data_config", "image_size", "{} pixels a side", ""),
    ("model_config", "width", "width {}", ""),
    ("model_config", "lstm_hidden", "LSTM hidden {}", ""),
    ("model_config", "prior_hidden", "prior LSTM hidden {}", ""),
    ("model_config", "beta", "beta {}", "g"),
    ("train_config", "epochs", "{} epochs", ""),
    ("train_config", "max_minutes", "at most {} min per run", "g"),
    ("train_config", "batch_size", "batch {}", ""),
    ("train_config", "lr", "lr {}", "g"),
    ("train_config", "amp", "bf16 autocast {}", ""),
    ("data_config", "train_size", "{} training videos per epoch", ","),
    ("data_config", "dataset", "dataset {}", ""),
    ("data_config", "mnist_root", "image files from {}", ""),
    ("data_config", "video_file", "videos from {}", ""),
    ("train_config", "seed", "seed {}", ""),
)


def trained_settings(documents: Sequence[Mapping[str, Any]]) -> str:
    """The training settings of the evaluated runs, as stored in their checkpoints (``metadata``), in words.

    A setting that differs between runs lists every value (``seed 42 / 43``); one that no run has (the
    baseline has no LSTM) or that is unset (no wall-clock limit, the embedded digits) is left out.
    """
    parts = []
    for section, name, template, number_format in TRAINED_SETTINGS:
        values = []
        for document in documents:
            value = document.get("metadata", {}).get(section, {}).get(name)
            if value is not None and value not in values:
                values.append(value)
        if values:
            texts = [("on" if value else "off") if isinstance(value, bool) else format(value, number_format)
                     for value in values]
            parts.append(template.format(" / ".join(texts)))
    return ", ".join(parts)


def group_by_model(documents: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Documents by experiment, in the registry's order (baseline, lstm, disentangled).

    Runs of one model with the same ``experiment_settings`` (repeats with other seeds) share a group, named
    by the model's display name ("Disentangled VAE"). Where one model was run with different settings (an
    ablation), each variant is its own group, named by the settings in which the variants differ, e.g.
    "Disentangled VAE (content_pooling=global, motion_blur=1)", so variants are never averaged together. A
    field that acts on only some of the runs (an option of one architecture) differs only among those.
    """
    order = list(DISPLAY_NAMES)
    ordered = sorted(documents, key=lambda d: (order.index(d["model_name"]) if d["model_name"] in order
                                               else len(order), str(d.get("experiment_name"))))
    pairs = [(document, experiment_settings(document)) for document in ordered]
    varying: dict[str, list[str]] = {}
    for model in {document["model_name"] for document in ordered}:
        of_model = [setting for document, setting in pairs if document["model_name"] == model]
        names = sorted(set().union(*of_model))
        varying[model] = [name for name in names  # among the runs on which the field acts
                          if len({json.dumps(setting.get(name), sort_keys=True) for setting in of_model
                                  if setting.get(name) != IDLE}) > 1]
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for document, setting in pairs:
        label = display_name(document["model_name"])
        differing = [name for name in varying[document["model_name"]] if setting.get(name) != IDLE]
        if differing:
            label += " (" + ", ".join(f"{name}={_setting_text(setting.get(name))}" for name in differing) + ")"
        grouped.setdefault(label, []).append(document)
    return grouped


def _setting_text(value: Any) -> str:
    return format(value, "g") if isinstance(value, float) else str(value)


def display_name(model_name: str) -> str:
    """"Baseline VAE", "LSTM-VAE", "Disentangled VAE" (other names as they are)."""
    return DISPLAY_NAMES.get(model_name, model_name)


def value_of(document: Mapping[str, Any], section: str, key: str) -> float:
    """A number from a document (NaN when missing or not a number)."""
    return metric_value(document.get(section, {}), key)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and count of one metric over runs (seeds)."""

    mean: float
    std: float
    count: int
    values: tuple[float, ...] = field(default=())

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        """Mean (NaN if any run is NaN; +inf stays +inf, e.g. a perfect PSNR) and std (finite runs only)."""
        array = np.asarray(values, dtype=np.float64)
        if len(array) == 0:
            return cls(math.nan, math.nan, 0)
        with np.errstate(invalid="ignore"):
            mean = float(array.mean())
            std = float(array.std(ddof=1)) if len(array) > 1 and np.isfinite(array).all() else math.nan
        return cls(mean, std, len(array), tuple(array.tolist()))

    def format(self, fmt: str) -> str:
        if self.count == 0:
            return "n/a"
        text = _format_number(self.mean, fmt)
        if self.count > 1 and math.isfinite(self.std):
            text += f" ± {_format_number(self.std, fmt)}"
        return text


def _format_number(value: float, fmt: str) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return format(value, fmt)


def summarize(grouped: Mapping[str, Sequence[Mapping[str, Any]]], rows: Sequence[Metric]) -> dict[str, dict[str, Summary]]:
    """``{display name: {metric key: Summary}}`` over each model's runs."""
    return {
        name: {row.key: Summary.of([value_of(document, row.section, row.key) for document in documents])
               for row in rows}
        for name, documents in grouped.items()
    }


# What the moving objects are called in the tables' labels, by dataset (the registry's labels say "digits").
OBJECT_NOUNS = {"mnist": ("digits", "digit"), "fashion": ("articles", "article")}


def row_label(row: Metric, dataset: str = "mnist") -> str:
    """The metric's label, its "digits" named as the dataset's objects (``"articles"`` for Fashion-MNIST)."""
    plural, singular = OBJECT_NOUNS.get(dataset, OBJECT_NOUNS["mnist"])
    return re.sub(r"\bdigit(s?)\b", lambda match: plural if match.group(1) else singular, row.label)


def dataset_of(documents: Iterable[Mapping[str, Any]]) -> str:
    """The documents' dataset (the evaluation data's, else the training data's; ``"mnist"`` when unset or
    mixed)."""
    names = set()
    for document in documents:
        metadata = document.get("metadata", {})
        data = metadata.get("evaluation_data_config") or metadata.get("data_config") or {}
        names.add(data.get("dataset", "mnist"))
    return names.pop() if len(names) == 1 else "mnist"


def table(grouped: Mapping[str, Sequence[Mapping[str, Any]]], rows: Sequence[Metric]) -> pd.DataFrame:
    """A DataFrame of formatted values: one row per metric (arrow: which way is better), one column per model.
    Labels name the dataset's objects (:func:`row_label`)."""
    summaries = summarize(grouped, rows)
    arrows = {"higher": " ↑", "lower": " ↓", "": ""}
    dataset = dataset_of(document for documents in grouped.values() for document in documents)
    index = [row_label(row, dataset) + arrows[row.better] for row in rows]
    columns = {name: [summaries[name][row.key].format(row.fmt) for row in rows] for name in grouped}
    frame = pd.DataFrame(columns, index=index)
    frame.index.name = "metric"
    return frame


# ----------------------------------------------------------------------------------------------------
# The design document's files


def comparison_results(grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """``{display name: {metric: mean, metric_std: std, ..., num_runs}}`` of reconstruction and cost."""
    rows = [row for row in TABLES["reconstruction"] + TABLES["cost"] if row.section != "training"]
    summaries = summarize(grouped, rows)
    results = {}
    for name, documents in grouped.items():
        entry: dict[str, Any] = {}
        for row in rows:
            summary = summaries[name][row.key]
            entry[row.key] = summary.mean
            if summary.count > 1:
                entry[f"{row.key}_std"] = summary.std
        entry["num_runs"] = len(documents)
        entry["runs"] = [document.get("experiment_name") for document in documents]
        results[name] = entry
    return results


def disentanglement_results(grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    """The Disentangled VAE's disentanglement metrics at the top level (the design document's file; the
    first Disentangled VAE variant where there are several) and every group's under ``by_model``; means
    over runs, with ``KEY_std`` where there are several."""
    by_model = {}
    for name, documents in grouped.items():
        keys = [key for key, value in documents[0].get("disentanglement", {}).items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)]
        entry: dict[str, Any] = {}
        for key in keys:
            summary = Summary.of([value_of(document, "disentanglement", key) for document in documents])
            entry[key] = summary.mean
            if summary.count > 1:
                entry[f"{key}_std"] = summary.std
        entry["num_runs"] = len(documents)
        entry["notes"] = sorted({note for document in documents
                                 for note in document.get("disentanglement", {}).get("notes", [])})
        by_model[name] = entry
    disentangled = [name for name, documents in grouped.items() if documents[0]["model_name"] == "disentangled"]
    top = dict(by_model[disentangled[0]]) if disentangled else {}
    return {**top, "by_model": by_model}


def tables_for(documents: Sequence[Mapping[str, Any]]) -> dict[str, tuple[Metric, ...]]:
    """The tables that apply to these documents: :data:`TABLES`, or, for data without ground-truth factors
    (a document with ``not_available``), those of what needs none, without the rows the documents left out
    (never a table of NaN)."""
    if not any("not_available" in document for document in documents):
        return dict(TABLES)
    left_out = {entry for document in documents for entry in document.get("not_available", {}).get("other", {})}
    return {name: tuple(row for row in rows if f"{row.section}.{row.key}" not in left_out)
            for name, rows in FACTOR_FREE_TABLES.items()}


def not_available(documents: Sequence[Mapping[str, Any]]) -> list[str]:
    """``"LABEL (section.key): REASON"`` for every metric the documents could not compute, each once, in the
    registry's order (empty for data with ground-truth factors)."""
    listed, other = set(), {}
    for document in documents:
        listed.update(document.get("not_available", {}).get("metrics", []))
        other.update(document.get("not_available", {}).get("other", {}))
    lines = [f"{metric.label.strip()} (`{metric.section}.{metric.key}`): {NO_FACTORS}"
             for metric in NEEDS_FACTORS if f"{metric.section}.{metric.key}" in listed]
    return lines + [f"{_entry_label(entry)} (`{entry}`): {why}" for entry, why in other.items()]


def _entry_label(entry: str) -> str:
    """A not-available entry's words: the registered metric's label, else the prediction part it names."""
    key = entry.split(".", 1)[-1]
    if key in METRICS and "." in entry:
        return METRICS[key].label.strip()
    return {"prediction": "Prediction, 10 -> 10", "identity_kept_by_window": "Prediction: judged identity by window",
            "long_horizon": "Prediction: the judged long horizon"}.get(key, entry)


def write_summary(documents: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> list[Path]:
    """Write ``comparison_results.json``, ``disentanglement_metrics.json`` and every table as ``.md``/``.tex``.

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    grouped = group_by_model(documents)
    written = [
        atomic_write_json(out / "comparison_results.json", comparison_results(grouped)),
        atomic_write_json(out / "disentanglement_metrics.json", disentanglement_results(grouped)),
    ]
    for name, rows in tables_for(documents).items():
        frame = table(grouped, rows)
        written.append(atomic_write_text(out / f"table_{name}.md", markdown_table(frame) + "\n"))
        written.append(atomic_write_text(out / f"table_{name}.tex", frame.to_latex(escape=True)))
    return written


# ----------------------------------------------------------------------------------------------------
# Hypotheses of the design document against the measurements

SWAP_LEVELS = ((0.8, "Clean"), (0.3, "Partial"), (-math.inf, "Fails"))


def swap_level(value: float) -> str:
    """"Clean" (>= 0.8), "Partial" (>= 0.3) or "Fails" for a chance-rescaled transfer score in [0, 1]."""
    if not math.isfinite(value):
        return "n/a"
    return next(label for threshold, label in SWAP_LEVELS if value >= threshold)


def _verdict(parts: Sequence[tuple[str, bool | None]]) -> str:
    """"holds" when every part holds, "does not hold" when none does, else "partly: " and each part's word."""
    results = [result for _, result in parts]
    if any(result is None for result in results):
        return "not measured"
    if all(results):
        return "holds"
    if not any(results):
        return "does not hold"
    return "partly: " + "; ".join(f"{text}: {'yes' if result else 'no'}" for text, result in parts)


def expected_vs_measured(grouped: Mapping[str, Sequence[Mapping[str, Any]]]) -> pd.DataFrame:
    """The design document's "Expected Results" table beside what was measured, with a verdict per row.

    Rules (written in the report): MSE and SSIM: expected "LSTM-VAE best, Disentangled ≈ Baseline"
    (≈: within 10% for MSE, 0.01 for SSIM). Content swap: ``content_swap_score``, the chance-rescaled judged
    digit accuracy of the swap (``(content_preservation - chance) / (1 - chance)``); motion swap:
    ``motion_swap_score``, the chance-rescaled judged trajectory correlation (both as stored with each run's
    metrics, or derived by :func:`evaluation.swaps.swap_score` for older files; means over runs);
    each labelled Clean (>= 0.8), Partial (>= 0.3) or Fails, and compared with
    Fails / Partial / Clean for Baseline / LSTM-VAE / Disentangled. Disentanglement: the ordering of
    ``overall_disentanglement`` against Low < Medium < High.

    The verdict is "holds", "does not hold", or "partly: ..." naming each part of the expectation (each
    model's swap level, each comparison) with yes or no. Where the Disentangled VAE was run in several
    variants (e.g. the hand tracker and the learned localiser), each variant gets its own rows, the variant
    in brackets after the metric.
    """
    names_of = {model: [name for name, documents in grouped.items() if documents[0]["model_name"] == model]
                for model in DISPLAY_NAMES}
    if not all(names_of.values()):
        return pd.DataFrame()
    base, lstm = names_of["baseline"][0], names_of["lstm"][0]

    def mean(section: str, key: str, name: str) -> float:
        return Summary.of([value_of(document, section, key) for document in grouped[name]]).mean

    def finite(*values: float) -> bool:
        return all(math.isfinite(value) for value in values)

    rows = []
    for dis in names_of["disentangled"]:
        names = (base, lstm, dis)
        variant = f" [{dis}]" if len(names_of["disentangled"]) > 1 else ""
        short = {base: "Baseline", lstm: "LSTM-VAE", dis: "Disentangled"}
        mse = {name: mean("reconstruction", "mse", name) for name in names}
        ok = finite(*mse.values())
        rows.append(("MSE" + variant, "Higher / Lower / Similar", " / ".join(f"{mse[n]:.5f}" for n in names), [
            ("LSTM-VAE lowest", mse[lstm] < min(mse[base], mse[dis]) if ok else None),
            ("Disentangled within 10% of Baseline", abs(mse[dis] - mse[base]) <= 0.1 * mse[base] if ok else None),
        ]))
        ssim = {name: mean("reconstruction", "ssim", name) for name in names}
        ok = finite(*ssim.values())
        rows.append(("SSIM" + variant, "Lower / Higher / Similar", " / ".join(f"{ssim[n]:.4f}" for n in names), [
            ("LSTM-VAE highest", ssim[lstm] > max(ssim[base], ssim[dis]) if ok else None),
            ("Disentangled within 0.01 of Baseline", abs(ssim[dis] - ssim[base]) <= 0.01 if ok else None),
        ]))
        for label, key in (("Content Swap", "content_swap_score"), ("Motion Swap", "motion_swap_score")):
            scores = {n: Summary.of([swap_score(document.get("disentanglement", {}), key)
                                     for document in grouped[n]]).mean for n in names}
            levels = {n: swap_level(scores[n]) for n in names}
            measured = " / ".join(f"{levels[n]} ({scores[n]:.2f})" for n in names)
            parts = [(f"{short[n]} {expected}", None if levels[n] == "n/a" else levels[n] == expected)
                     for n, expected in zip(names, ("Fails", "Partial", "Clean"), strict=True)]
            rows.append((label + variant, "Fails / Partial / Clean", measured, parts))
        overall = {name: mean("disentanglement", "overall_disentanglement", name) for name in names}
        ok = finite(*overall.values())
        rows.append(("Disentanglement" + variant, "Low / Medium / High",
                     " / ".join(f"{overall[n]:.3f}" for n in names), [
                         ("Baseline below LSTM-VAE", overall[base] < overall[lstm] if ok else None),
                         ("LSTM-VAE below Disentangled", overall[lstm] < overall[dis] if ok else None),
                     ]))
    frame = pd.DataFrame(
        [(label, expected, measured, _verdict(parts)) for label, expected, measured, parts in rows],
        columns=["metric", "expected (Baseline / LSTM-VAE / Disentangled)", "measured", "hypothesis"],
    )
    return frame.set_index("metric")
