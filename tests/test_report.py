"""Summary tables, the design document's files, the hypotheses' verdicts, summarize.py and the demo."""

from __future__ import annotations

import json
import math

import pytest
import torch

import demo
import summarize
from evaluation.metric_names import TABLES
from evaluation.reporting import report as reports
from evaluation.reporting.writer import Report, markdown_table
from models.checkpoint import atomic_torch_save, load_checkpoint
from training.config import ConfigError
from utils import provenance
from utils.stages import StageTimes


def document(model: str, name: str, mse: float, ssim: float, overall: float, preservation: float = 0.9,
             motion: float = 0.9, **extra) -> dict:
    """A minimal evaluate.py metrics document."""
    return {
        "experiment_name": name,
        "model_name": model,
        "reconstruction": {"mse": mse, "psnr": -10 * math.log10(mse), "ssim": ssim, "temporal_consistency": mse / 2},
        "cost": {"trainable_parameters": 1000, "forward_time_ms": 5.0, "generation_time_ms": 3.0},
        "disentanglement": {
            "overall_disentanglement": overall, "sap_disentanglement": 0.2, "mean_abs_correlation": 0.1,
            "swap_quality": 0.5, "content_preservation": preservation, "content_accuracy_chance": 0.2,
            "motion_correlation": motion, "motion_correlation_chance": 0.1, "notes": [f"note of {name}"], **extra,
        },
        "metadata": {"epoch": 3, "step": 30},
    }


def three_models(**overrides) -> list[dict]:
    """Documents for which every hypothesis of the design document holds, unless overridden."""
    values = {
        "baseline": dict(mse=0.020, ssim=0.50, overall=0.1, preservation=0.25, motion=0.15),
        "lstm": dict(mse=0.010, ssim=0.70, overall=0.3, preservation=0.6, motion=0.5),
        "disentangled": dict(mse=0.021, ssim=0.505, overall=0.6, preservation=0.95, motion=0.9),
    }
    for model, changes in overrides.items():
        values[model].update(changes)
    return [document(model, f"{model}_vae", **kwargs) for model, kwargs in values.items()]


def test_summary_mean_std_and_non_finite_values():
    summary = reports.Summary.of([1.0, 2.0, 3.0])
    assert (summary.mean, summary.std, summary.count) == (2.0, 1.0, 3)
    assert summary.format(".2f") == "2.00 ± 1.00"
    assert reports.Summary.of([4.0]).format(".1f") == "4.0"  # one run: no spread shown
    assert reports.Summary.of([math.inf, math.inf]).format(".2f") == "inf"  # perfect PSNR stays inf
    assert math.isnan(reports.Summary.of([1.0, math.nan]).mean)  # a NaN run is never dropped
    assert reports.Summary.of([]).format(".2f") == "n/a"


def test_tables_put_models_side_by_side_and_aggregate_seeds():
    documents = three_models() + [document("lstm", "lstm_vae_seed43", mse=0.012, ssim=0.72, overall=0.35)]
    grouped = reports.group_by_model(documents)
    assert list(grouped) == ["Baseline VAE", "LSTM-VAE", "Disentangled VAE"]
    frame = reports.table(grouped, TABLES["reconstruction"])
    assert frame.loc["MSE per pixel ↓", "LSTM-VAE"] == "0.011000 ± 0.001414"
    assert frame.loc["MSE per pixel ↓", "Baseline VAE"] == "0.020000"
    assert frame.loc["MSE per frame (sum over pixels) ↓", "Baseline VAE"] == "nan"  # missing in the document


def test_the_tables_name_the_datasets_objects():
    """Moving Fashion-MNIST's tables say "articles" where Moving MNIST's say "digits"; a mixed set keeps "digits"."""
    fashion = three_models()
    for item in fashion:
        item["metadata"]["evaluation_data_config"] = {"dataset": "fashion"}
    rows = TABLES["swaps"]
    labels = list(reports.table(reports.group_by_model(fashion), rows).index)
    assert any("A's articles kept" in label for label in labels)
    assert not any("digit" in label for label in labels)
    mnist_labels = list(reports.table(reports.group_by_model(three_models()), rows).index)
    assert any("A's digits kept" in label for label in mnist_labels)
    assert reports.dataset_of(fashion + three_models()) == "mnist"
    assert reports.row_label(TABLES["swaps"][0], "fashion").count("article") == TABLES["swaps"][0].label.count("digit")


def with_settings(item: dict, seed: int, **model_config) -> dict:
    """A document with the metadata evaluate.py writes: the run's model, data and training configs."""
    item["metadata"].update(
        model_config={"width": 16, "architecture": "pooled", "content_pooling": "flatten", "motion_blur": 1,
                      **model_config},
        data_config={"num_frames": 10, "seed": seed, "test_size": 500},
        train_config={"lr": 1e-3, "seed": seed, "device": "cpu", "experiment_name": item["experiment_name"]},
    )
    return item


def test_variants_of_a_model_are_separate_columns_and_seeds_are_averaged(tmp_path):
    documents = three_models() + [
        document("disentangled", "dis_pool", mse=0.03, ssim=0.4, overall=0.2),
        document("disentangled", "dis_pool_seed43", mse=0.05, ssim=0.4, overall=0.4),
        document("disentangled", "dis_blur", mse=0.04, ssim=0.4, overall=0.3),
    ]
    seeds = {"dis_pool_seed43": 43}
    variant = {"dis_pool": {"content_pooling": "global"}, "dis_pool_seed43": {"content_pooling": "global"},
               "dis_blur": {"motion_blur": 5}}
    for item in documents:
        name = item["experiment_name"]
        with_settings(item, seeds.get(name, 42), **variant.get(name, {}))
    grouped = reports.group_by_model(documents)
    plain, pooled, blurred = (
        "Disentangled VAE (content_pooling=flatten, motion_blur=1)",
        "Disentangled VAE (content_pooling=global, motion_blur=1)",
        "Disentangled VAE (content_pooling=flatten, motion_blur=5)",
    )
    assert list(grouped) == ["Baseline VAE", "LSTM-VAE", blurred, pooled, plain]  # by run name
    assert [item["experiment_name"] for item in grouped[pooled]] == ["dis_pool", "dis_pool_seed43"]
    frame = reports.table(grouped, TABLES["reconstruction"])
    assert frame.loc["MSE per pixel ↓", pooled] == "0.040000 ± 0.014142"  # two seeds of one variant
    assert frame.loc["MSE per pixel ↓", plain] == "0.021000"  # never averaged with the variants

    reports.write_summary(documents, tmp_path)
    disentanglement = json.loads((tmp_path / "disentanglement_metrics.json").read_text())
    assert disentanglement["overall_disentanglement"] == pytest.approx(0.3)  # the first variant: dis_blur
    assert set(disentanglement["by_model"]) == set(grouped)

    # An option of one architecture splits only the runs it acts on: the learned localiser's runs stored
    # track_alignment 0 (written before it), the slot model's 2; they differ by architecture alone.
    slot_runs = [with_settings(document("disentangled", name, 0.01, 0.9, 0.6), 42, architecture=architecture,
                               track_alignment=rounds)
                 for name, architecture, rounds in (("slots", "slots", 2), ("keypoints", "keypoints", 0))]
    assert list(reports.group_by_model(slot_runs)) == ["Disentangled VAE (architecture=keypoints)",
                                                       "Disentangled VAE (architecture=slots)"]
    unaligned = with_settings(document("disentangled", "slots_plain", 0.01, 0.9, 0.6), 42, architecture="slots",
                              track_alignment=0)
    assert "Disentangled VAE (architecture=slots, track_alignment=0)" in reports.group_by_model(
        [*slot_runs, unaligned])

    # Another learning rate is another experiment too; another device or test-set size is not.
    other_lr = with_settings(document("lstm", "lstm_lr", 0.01, 0.7, 0.3), 42)
    other_lr["metadata"]["train_config"]["lr"] = 3e-4
    other_device = with_settings(document("lstm", "lstm_gpu", 0.01, 0.7, 0.3), 42)
    other_device["metadata"]["train_config"]["device"] = "cuda"
    other_device["metadata"]["data_config"]["test_size"] = 1000
    lstm = with_settings(document("lstm", "lstm_vae", 0.01, 0.7, 0.3), 42)
    assert list(reports.group_by_model([lstm, other_device])) == ["LSTM-VAE"]
    assert list(reports.group_by_model([lstm, other_lr])) == ["LSTM-VAE (lr=0.0003)", "LSTM-VAE (lr=0.001)"]


def test_design_document_files_keep_their_keys(tmp_path):
    documents = three_models() + [document("disentangled", "disentangled_vae_seed43", 0.02, 0.5, 0.8)]
    written = reports.write_summary(documents, tmp_path)
    assert {path.name for path in written} >= {"comparison_results.json", "disentanglement_metrics.json",
                                              "table_reconstruction.md", "table_reconstruction.tex"}
    comparison = json.loads((tmp_path / "comparison_results.json").read_text())
    for name in ("Baseline VAE", "LSTM-VAE", "Disentangled VAE"):  # what the design document's script reads
        assert {"mse", "psnr", "ssim"} <= set(comparison[name])
    assert comparison["Disentangled VAE"]["num_runs"] == 2
    assert comparison["Disentangled VAE"]["mse"] == pytest.approx(0.0205)
    assert "mse_std" in comparison["Disentangled VAE"] and "mse_std" not in comparison["LSTM-VAE"]
    disentanglement = json.loads((tmp_path / "disentanglement_metrics.json").read_text())
    for key in ("sap_disentanglement", "overall_disentanglement", "mean_abs_correlation", "swap_quality"):
        assert key in disentanglement
    assert disentanglement["overall_disentanglement"] == pytest.approx(0.7)  # the Disentangled VAE's mean
    assert disentanglement["by_model"]["Baseline VAE"]["overall_disentanglement"] == pytest.approx(0.1)
    assert disentanglement["notes"] == ["note of disentangled_vae", "note of disentangled_vae_seed43"]
    assert "\\begin{tabular}" in (tmp_path / "table_reconstruction.tex").read_text()


def test_hypotheses_hold_when_the_numbers_say_so():
    verdicts = reports.expected_vs_measured(reports.group_by_model(three_models()))["hypothesis"]
    assert verdicts.to_dict() == dict.fromkeys(["MSE", "SSIM", "Content Swap", "Motion Swap", "Disentanglement"],
                                               "holds")


def test_hypotheses_that_the_numbers_contradict_are_reported_as_such():
    documents = three_models(lstm=dict(mse=0.030, overall=0.9), disentangled=dict(preservation=0.52))
    verdicts = reports.expected_vs_measured(reports.group_by_model(documents))
    # Each verdict says which part of the expectation holds.
    assert verdicts.loc["MSE", "hypothesis"] == (
        "partly: LSTM-VAE lowest: no; Disentangled within 10% of Baseline: yes")
    assert verdicts.loc["Disentanglement", "hypothesis"] == (
        "partly: Baseline below LSTM-VAE: yes; LSTM-VAE below Disentangled: no")
    assert verdicts.loc["Content Swap", "hypothesis"] == (
        "partly: Baseline Fails: yes; LSTM-VAE Partial: yes; Disentangled Clean: no")
    assert verdicts.loc["Content Swap", "measured"].endswith("Partial (0.40)")  # (0.52 - 0.2) / 0.8
    assert verdicts.loc["Motion Swap", "hypothesis"] == "holds"
    worse = three_models(lstm=dict(mse=0.030), disentangled=dict(mse=0.05))
    assert reports.expected_vs_measured(reports.group_by_model(worse)).loc["MSE", "hypothesis"] == "does not hold"
    missing = three_models(disentangled=dict(preservation=math.nan))
    assert reports.expected_vs_measured(reports.group_by_model(missing)).loc["Content Swap", "hypothesis"] == (
        "not measured")


def test_each_disentangled_variant_gets_its_own_verdicts():
    tracker = document("disentangled", "disentangled_vae_slots", 0.021, 0.505, 0.6, preservation=0.4)
    tracker["metadata"] = {"model_config": {"architecture": "slots"}}
    documents = three_models()
    documents[2]["metadata"] = {"model_config": {"architecture": "keypoints"}}
    verdicts = reports.expected_vs_measured(reports.group_by_model(documents + [tracker]))["hypothesis"]
    assert verdicts["Content Swap [Disentangled VAE (architecture=keypoints)]"] == "holds"
    assert verdicts["Content Swap [Disentangled VAE (architecture=slots)]"].endswith("Disentangled Clean: no")
    assert len(verdicts) == 10


def test_swap_levels():
    assert [reports.swap_level(v) for v in (0.95, 0.8, 0.5, 0.3, 0.1, math.nan)] == [
        "Clean", "Clean", "Partial", "Partial", "Fails", "n/a"]


def test_report_renders_markdown_and_html(tmp_path):
    report = Report("Title", tmp_path)
    report.heading("Section")
    report.paragraph("Text with `code` and **bold** <and a tag>.")
    report.table(reports.table(reports.group_by_model(three_models()), TABLES["cost"]))
    report.image(tmp_path / "figures" / "a.png", "A figure")
    markdown, page = (path.read_text() for path in report.write())
    assert "## Section" in markdown and "![A figure](figures/a.png)" in markdown
    assert "| Trainable parameters" in markdown and "1,000" in markdown
    assert "<code>code</code>" in page and "<b>bold</b>" in page and "&lt;and a tag&gt;" in page
    assert '<img src="figures/a.png"' in page


def test_stage_table_adds_the_stages_not_their_parts():
    times = StageTimes()
    times.add("judges", 30.0)
    times.add("training run", 60.0)
    times.add("prior fit run", 6.0)
    times.add("evaluation run", 24.0)
    times.add("evaluation run", 20.0, part="disentanglement")
    with times.time("report", note="tables"):
        pass
    table = times.table()
    assert list(table.index[:6]) == ["judges", "training run", "prior fit run", "evaluation run",
                                     "evaluation run / disentanglement", "report"]
    assert table.loc["total", "seconds"] == "120.0" and table.loc["evaluation run / disentanglement", "share"] == "17%"
    assert table.loc["report", "note"] == "tables"
    markdown = markdown_table(table)
    assert "| prior fit run " in markdown and "| total " in markdown


def test_summarize_cli(tmp_path, capsys):
    folder = tmp_path / "eval_results"
    folder.mkdir()
    for item in three_models():
        (folder / f"{item['experiment_name']}_metrics.json").write_text(json.dumps(item))
    assert summarize.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "RECONSTRUCTION" in out and "EXPECTED (design document) VS MEASURED" in out
    assert (folder / "comparison_results.json").exists() and (folder / "table_swaps.tex").exists()
    assert summarize.main([str(tmp_path / "empty")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (folder / "bad_metrics.json").write_text("{not json")
    assert summarize.main([str(folder)]) == 2
    assert "not readable JSON" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["a_file", "a_file/below"])
def test_summarize_out_on_a_file_is_one_line(tmp_path, capsys, out):
    folder = tmp_path / "eval_results"
    folder.mkdir()
    for item in three_models():
        (folder / f"{item['experiment_name']}_metrics.json").write_text(json.dumps(item))
    (tmp_path / "a_file").write_text("keep me")
    capsys.readouterr()
    assert summarize.main([str(folder), "--out", str(tmp_path / out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and str(tmp_path / "a_file") in error
    assert ("is a file, not a folder" if out == "a_file" else "cannot write the summary") in error
    assert (tmp_path / "a_file").read_text() == "keep me"


TINY_DEMO = ["--steps-per-model", "4", "--train-size", "8", "--val-size", "4", "--test-size",
             "8", "--frames", "4", "--image-size", "32", "--width", "8", "--batch-size", "4", "--num-samples", "2",
             "--no-judges", "--amp", "off", "--threads", "1", "--prediction-videos", "2", "--prediction-horizon", "25"]


@pytest.mark.slow
def test_demo_end_to_end_and_reuse(tmp_path, capsys):
    argv = TINY_DEMO + ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--out", str(tmp_path / "results"),
                        "--lstm-hidden", "16", "--train-args",
                        "--model-option feature_dim=16 --latent-dim 8 --content-dim 8 --motion-dim 8"]
    assert demo.main(argv) == 0
    results = tmp_path / "results"
    for name in ("report.md", "report.html", "tables/comparison_results.json", "tables/table_cost.tex",
                 "figures/training_curves.png", "figures/training_curves.pdf", "figures/reconstructions.png",
                 "figures/reconstructions.pdf", "figures/content_swap.pdf", "figures/content_swap.gif",
                 "eval/disentangled_vae_metrics.json", "eval/lstm_vae_swaps.gif",
                 "eval/baseline_vae_interpolation.gif", "eval/baseline_vae_interpolation.pdf"):
        assert (results / name).is_file(), name
    assert (results / "figures" / "training_curves.pdf").read_bytes().startswith(b"%PDF")
    markdown = (results / "report.md").read_text()
    assert "The design document's hypotheses against the measurements" in markdown
    assert "Disentangled VAE" in markdown and "LSTM-VAE" in markdown
    assert "4 optimizer steps each" in markdown and "`disentangled_vae` 4 steps in" in markdown
    # the settings as stored in the checkpoints, and where the numbers came from
    assert "4 frames, 32 pixels a side, width 8, LSTM hidden 16, prior LSTM hidden 16, beta 1, 2 epochs" in markdown
    assert f"commit `{provenance.git_state()['commit']}`" in markdown and "torch " + torch.__version__ in markdown
    for model in ("baseline", "lstm", "disentangled"):
        # last.pt: the step budget (best_model.pt may hold an earlier, better epoch)
        checkpoint = load_checkpoint(tmp_path / "checkpoints" / f"{model}_vae" / "last.pt")
        assert checkpoint["model_config"]["width"] == 8
        assert checkpoint["step"] == 4  # the step budget is exact: two epochs of 8 videos in batches of 4
        assert reports.training_record(tmp_path / "checkpoints" / f"{model}_vae")[0] == 4
        assert checkpoint["model_config"].get("lstm_hidden", 16) == checkpoint["model_config"].get("prior_hidden", 16) == 16
    # The Disentangled VAE is the learned localiser (the default); the fourth run, the hand tracker beside it,
    # is reported as its own variant.
    default = load_checkpoint(tmp_path / "checkpoints" / "disentangled_vae" / "best_model.pt")
    assert default["model_config"]["architecture"] == "keypoints"
    tracker = load_checkpoint(tmp_path / "checkpoints" / "disentangled_vae_slots" / "best_model.pt")
    assert tracker["model_config"]["architecture"] == "slots" and tracker["step"] == 4
    assert (results / "eval" / "disentangled_vae_slots_metrics.json").is_file()
    assert "Disentangled VAE (architecture=slots)" in markdown and "Disentangled VAE (architecture=keypoints)" in markdown
    # Each run's priors in words: the object architectures draw their digits' paths, the LSTM-VAE its own.
    assert "motion Gaussian mixture per object path (2 drawn independently, 4 frames)" in markdown
    assert "LSTM-VAE: content Gaussian mixture, 8 components" in markdown  # at most one per training video
    assert "motion learned recurrent prior" in markdown
    # Where the time went: every stage, each prior fit and each evaluation's parts, in the report and the log.
    assert "## Where the time went" in markdown
    for stage in ("training baseline_vae", "prior fit baseline_vae", "evaluation lstm_vae / disentanglement",
                  "evaluation disentangled_vae / figures", "report", "total"):
        assert f"| {stage} " in markdown, stage
    assert "stages (wall-clock):" in capsys.readouterr().out
    # Prediction (issue 30): the 10 -> 10 table beside the published one, the curves, the filmstrip and GIF
    assert "Prediction: 10 observed frames, 10 predicted" in markdown and "PredRNN++ (OpenSTL re-run)" in markdown
    assert "last frame repeated (reference)" in markdown and "identity kept at 25" in markdown
    assert "the generator's test videos (seed 42), 20 frames" in markdown
    for name in ("figures/prediction_curves.png", "figures/prediction_filmstrip.png", "figures/prediction.gif"):
        assert (results / name).is_file(), name
    assert "the fitted path dynamics" in markdown and "positions refined by" in markdown  # how it continued its paths
    assert "draws: each step's component drawn by its sharpened weight" in markdown
    assert demo.main(argv) == 0  # the second run reuses the checkpoints: evaluation and report only
    assert capsys.readouterr().out.count("reusing") == 4  # the three models and the hand tracker

    # Asked for other settings than the runs were trained with: refused before any work, naming them.
    report_time = (results / "report.md").stat().st_mtime_ns
    assert demo.main(argv + ["--frames", "6", "--lr", "0.01"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("demo.py: error: ")
    assert "baseline_vae: lr 0.001 (asked 0.01), num_frames 4 (asked 6)" in error and "--retrain" in error
    assert (results / "report.md").stat().st_mtime_ns == report_time  # nothing was evaluated or written
    assert demo.main(TINY_DEMO + ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--out", str(results)]) == 2
    assert "lstm_hidden 16 (asked 128)" in capsys.readouterr().err  # the demo's default LSTM size

    # A run whose training stopped early (Ctrl-C) is neither passed off as finished nor refused: it is continued.
    last = tmp_path / "checkpoints" / "lstm_vae" / "last.pt"
    checkpoint = load_checkpoint(last)
    atomic_torch_save({**checkpoint, "epoch": 1}, last)
    assert demo.main(argv) == 0
    out = capsys.readouterr().out
    assert "continuing lstm_vae (lstm, seed 42)" in out and out.count("reusing") == 3
    assert load_checkpoint(last)["epoch"] == 2


def prediction_document(model: str, mse: float, identity: list[float]) -> dict:
    long = {"windows": [[11, 20], [21, 30]], "horizon": 30, "num_videos": 4,
            "identity_kept_by_window": identity, "path_error_px_by_window": [1.0, 2.0],
            "frechet_distance_by_window": [3.0, 4.0], "real_identity_kept_by_window": [1.0, 1.0],
            "real_frechet_distance_by_window": [0.5, 0.5],
            "speed_w1_px_by_window": [0.2, 0.6], "draw": {"speed_w1_px_by_window": [0.2, 0.3]},
            "last_frame": {"identity_kept_by_window": [0.9, 0.5], "path_error_px_by_window": [5.0, 9.0],
                           "frechet_distance_by_window": [6.0, 8.0]}}
    table = {"mse_per_frame": mse, "mae_per_frame": 2 * mse, "ssim": 0.8, "ssim_uniform": 0.7, "psnr": 15.0}
    return {"model_name": model, "experiment_name": f"{model}_vae",
            "metadata": {"step": 512, "device": "cpu", "model_config": {}, "train_config": {}, "data_config": {}},
            "prediction": {**table, "best_of_n": {"samples": 3, **table}, "identity_kept_at_30": identity[-1],
                           "identity_kept_by_window": identity, "test_set": {"kind": "generator"},
                           "last_frame": {**table, "mse_per_frame": 99.0, "identity_kept_at_30": 0.5},
                           "long_horizon": long, "method": "words"}}


def test_prediction_table_and_curves(tmp_path):
    from evaluation.reporting.prediction_report import prediction_table, save_identity_curves

    grouped = reports.group_by_model([prediction_document("lstm", 40.0, [0.8, 0.6]),
                                      prediction_document("disentangled", 30.0, [0.95, 0.9])])
    frame = prediction_table(grouped)
    assert frame.loc["Disentangled VAE", "MSE/frame ↓"] == "30.0"
    assert frame.loc["LSTM-VAE", "identity kept at 30 ↑"] == "0.600"
    assert frame.loc["last frame repeated (reference)", "MSE/frame ↓"] == "99.0"
    assert frame.loc["DDPAE (paper)", "MSE/frame ↓"] == "38.9" and "best-of-N SSIM ↑" in frame.columns
    assert frame.loc["LSTM-VAE", "best-of-N SSIM ↑"] == "0.700 (N=3)"
    assert frame.loc["LSTM-VAE", "budget"] == "512 steps, cpu"
    path = save_identity_curves(grouped, tmp_path / "curves.png")
    assert path.is_file() and path.with_suffix(".pdf").is_file()
    assert save_identity_curves(reports.group_by_model([document("lstm", "lstm_vae", 1.0, 0.5, 0.1)]),
                                tmp_path / "none.png") is None


def test_trained_settings_come_from_the_checkpoints_configs():
    documents = three_models()
    for number, document in enumerate(documents):
        document["metadata"] |= {
            "model_config": {"width": 16, "beta": 1.0, **({"lstm_hidden": 128} if number else {})},
            "train_config": {"epochs": 8, "batch_size": 32, "lr": 1e-3, "amp": True, "seed": 42 + number % 2,
                             "max_minutes": None},
            "data_config": {"num_frames": 10, "image_size": 64, "train_size": 2048, "mnist_root": None},
        }
    assert reports.trained_settings(documents) == (
        "10 frames, 64 pixels a side, width 16, LSTM hidden 128, beta 1, 8 epochs, batch 32, lr 0.001, "
        "bf16 autocast on, 2,048 training videos per epoch, seed 42 / 43"
    )


@pytest.mark.parametrize(("options", "message"), [
    (["--frames", "1"], "num_frames must be at least 2"),
    (["--image-size", "20"], "image_size must be a multiple of 16"),
    (["--train-args", "--kl-warmup-epochs -1"], "not valid training options"),
    (["--steps-per-model", "3"], "not a multiple of the 2 steps of an epoch"),
])
def test_demo_rejects_bad_training_options_before_any_work(tmp_path, capsys, options, message):
    argv = TINY_DEMO + ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--out", str(tmp_path / "results")]
    assert demo.main(argv + options) == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines()[-1].startswith("demo.py: error: ") and message in error
    assert "Traceback" not in error
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(("options", "warmup"), [([], 4.0), (["--kl-warmup-epochs", "0"], 0.0)])
def test_demo_kl_warmup_reaches_every_models_training_config(options, warmup):
    args = demo.build_parser().parse_args(TINY_DEMO + options)
    for model in ("baseline", "lstm", "disentangled"):
        _, train_config, _, _ = demo.requested_configs(args, model, 42, "run", amp=False)
        assert train_config.kl_warmup_epochs == warmup


def test_demo_train_args_set_the_configs_without_a_command_line_round_trip():
    args = demo.build_parser().parse_args(TINY_DEMO + [
        "--train-args", "--grad-clip 1 --image-size 64 --digits 3 --fixed-train-set --seed 7 --content-dim 6"])
    for model in ("baseline", "disentangled"):
        model_config, train_config, data_config, notes = demo.requested_configs(args, model, 42, "run", amp=False)
        assert train_config.grad_clip == 1.0 and train_config.seed == 7 and train_config.epochs == 2
        assert data_config.seed == 7 and data_config.video.num_digits == 3 and not data_config.fresh_train
        assert data_config.video.image_size == 64 == model_config.image_size
        assert data_config.video.digit_size == 28  # the standard ratio follows the new canvas
        assert data_config.video.num_frames == 4 and model_config.width == 8  # the demo's own options stay
        if model == "disentangled":
            assert model_config.content_dim == 6 and model_config.slots == 3 and not notes
        else:
            assert notes == ["--content-dim is ignored: the baseline model has no content_dim"]
    args = demo.build_parser().parse_args(TINY_DEMO + ["--train-args", "--name other"])
    with pytest.raises(ConfigError, match="--name does not set a model, training or data option"):
        demo.requested_configs(args, "lstm", 42, "run", amp=False)


def test_demo_rejects_a_negative_kl_warmup_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main(TINY_DEMO + ["--kl-warmup-epochs", "-1"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "demo.py: error: argument --kl-warmup-epochs: must be a finite number >= 0, got '-1'")
