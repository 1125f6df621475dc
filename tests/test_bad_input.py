"""Bad input, full disks and interrupts at the edges of evaluate.py and summarize.py (issue 22): one line
naming the problem and the fix, the documented exit status, and nothing half-written."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

import evaluate
from tests.evaluation_helpers import FRAMES, write_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def run_evaluate(*argv) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = evaluate.main([str(arg) for arg in argv])
    return code, err.getvalue()


def cheap_args(checkpoint, save_dir, *more) -> list:
    return ["--checkpoint", checkpoint, "--device", "cpu", "--num_samples", "2", "--save_dir", save_dir,
            "--test-size", "5", "--max-samples", "5", "--batch-size", "5", "--interpolation-steps", "2",
            "--prediction-videos", "0", "--prediction-samples", "0", "--no-judges", *more]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("bad_input") / "tiny_run")


def standard_file(tmp_path, kind: str):
    path = tmp_path / "mnist_test_seq.npy"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("20 10000 64 64\n")
    else:  # no video
        np.save(path, np.zeros((FRAMES, 0, 64, 64), dtype=np.uint8))
    return path


@pytest.mark.parametrize(("kind", "message"), [("empty", "is empty"), ("text", "is not a .npy array file"),
                                               ("no video", "holds no video")])
def test_a_bad_standard_test_file_is_one_line_naming_it_before_any_metric(tmp_path, checkpoint, kind, message):
    path = standard_file(tmp_path, kind)
    code, error = run_evaluate(*cheap_args(checkpoint, tmp_path / "out", "--standard-test-file", path))
    assert code == 2 and error.count("\n") == 1 and "Traceback" not in error, error
    assert str(path) in error and message in error and "pickle" not in error
    assert not (tmp_path / "out").exists()  # found before any metric was computed


def test_too_few_test_videos_are_refused_before_any_metric(tmp_path, checkpoint):
    code, error = run_evaluate(*cheap_args(checkpoint, tmp_path / "out")[:-1], "--test-size", "3", "--no-judges")
    assert code == 2 and error.strip() == ("evaluate.py: error: --test-size must be at least 5 (the "
                                           "disentanglement probes need them), got 3")
    assert not (tmp_path / "out").exists()


def test_a_full_disk_while_writing_a_figure_is_one_line_exit_3_and_leaves_whole_files(tmp_path, checkpoint,
                                                                                     monkeypatch):
    save_dir = tmp_path / "out"
    real_savefig = Figure.savefig

    def full_disk_for_the_samples(self, handle, *args, **kwargs):
        if "samples.png" in getattr(handle, "name", ""):
            handle.write(b"\x89PNG half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savefig(self, handle, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", full_disk_for_the_samples)
    code, error = run_evaluate(*cheap_args(checkpoint, save_dir))
    assert code == 3 and error.count("\n") == 1 and "Traceback" not in error, error
    assert error.startswith(f"evaluate.py: error: cannot write {save_dir / 'tiny_run_samples.png'}: No space "
                            "left on device; every file already in")
    metadata = json.loads((save_dir / "tiny_run_metrics.json").read_text())["metadata"]  # written before, whole
    # and it names the checkpoint by its content, which summarize.py identifies runs by
    assert metadata["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    from models.checkpoint import load_checkpoint, weights_sha256  # and by its weights (issue 33, item 3)
    assert metadata["weights_sha256"] == weights_sha256(load_checkpoint(checkpoint)["model_state_dict"])
    assert not (save_dir / "tiny_run_samples.png").exists()
    assert not [path for path in save_dir.iterdir() if path.name.startswith(".")]  # no temporary file left


def test_an_interrupt_during_the_evaluation_is_one_line_and_exit_130(tmp_path, checkpoint, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    code, error = run_evaluate(*cheap_args(checkpoint, tmp_path / "out"))
    assert code == 130 and error.count("\n") == 1 and "interrupted" in error


# ----------------------------------------------------------------------------------------------------
# summarize.py (items 1 and 2)


def metrics_document(model: str, name: str, mse: float, sha: str | None, videos: int = 50, **metadata) -> dict:
    """A minimal evaluate.py metrics document of the checkpoint whose hash is ``sha``."""
    return {
        "experiment_name": name, "model_name": model,
        "reconstruction": {"mse": mse, "psnr": 20.0, "ssim": 0.5, "temporal_consistency": 0.01, "num_videos": videos},
        "cost": {"trainable_parameters": 10}, "disentanglement": {"overall_disentanglement": 0.5},
        "metadata": {"epoch": 1, "step": 2, **({"checkpoint_sha256": sha} if sha else {}), **metadata},
    }


def write_documents(folder, documents: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, document in documents.items():
        (folder / file_name).write_text(json.dumps(document))


def run_summarize(*argv) -> tuple[int, str, str]:
    import summarize

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = summarize.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def test_summarize_runs_again_on_its_own_output_and_beside_the_readme_scripts_file(tmp_path):
    folder = tmp_path / "eval_results"
    write_documents(folder, {"a_metrics.json": metrics_document("baseline", "a", 0.03, "aa"),
                             "b_metrics.json": metrics_document("disentangled", "b", 0.02, "bb")})
    assert run_summarize(folder)[0] == 0
    assert (folder / "disentanglement_metrics.json").is_file()  # matches *_metrics.json
    code, out, err = run_summarize(folder)
    assert code == 0, err
    # the custom evaluation script of docs/training.md writes its own disentanglement_metrics.json there too
    (folder / "disentanglement_metrics.json").write_text(json.dumps({"mig": 0.1, "sap_disentanglement": 0.2}))
    code, out, err = run_summarize(folder)
    assert code == 0, err
    assert json.loads((folder / "comparison_results.json").read_text())["Baseline VAE"]["num_runs"] == 1


def test_summarize_counts_a_checkpoint_once_however_often_it_was_evaluated(tmp_path):
    folder = tmp_path / "eval_results"
    seed42 = metrics_document("baseline", "baseline_vae", 0.037128, "aa", videos=16)
    write_documents(folder, {
        "baseline_vae_metrics.json": seed42,
        "copy_metrics.json": seed42,  # a copied file
        "again_metrics.json": metrics_document("baseline", "baseline_vae", 0.036, "aa", videos=50),  # re-evaluated
    })
    code, out, err = run_summarize(folder)
    assert code == 0, err
    assert out.count("a repeat evaluation, not another seed") == 2
    results = json.loads((folder / "comparison_results.json").read_text())["Baseline VAE"]
    assert results["num_runs"] == 1 and results["mse"] == 0.036 and "mse_std" not in results  # the 50-video one
    assert "± 0.000000" not in out
    # two seeds (two checkpoints) are still two runs
    write_documents(folder, {"baseline_vae_seed43_metrics.json": metrics_document("baseline", "s43", 0.04, "cc")})
    assert run_summarize(folder)[0] == 0
    assert json.loads((folder / "comparison_results.json").read_text())["Baseline VAE"]["num_runs"] == 2


def test_files_written_before_the_checkpoint_hash_are_identified_by_checkpoint_path_and_step(tmp_path):
    from evaluation.reporting import report

    old = metrics_document("lstm", "lstm_vae", 0.03, None, checkpoint="/runs/lstm_vae/best_model.pt")
    documents = [{**old, "source": "a"}, {**old, "source": "b"},
                 {**old, "source": "c", "metadata": {**old["metadata"], "step": 4}}]
    kept, notes = report.distinct_runs(documents)
    assert [document["source"] for document in kept] == ["a", "c"] and len(notes) == 1



def test_summarize_reads_a_document_whose_generation_is_null_and_says_what_is_missing(tmp_path):
    folder = tmp_path / "eval_results"
    write_documents(folder, {"a_metrics.json": {**metrics_document("baseline", "a", 0.03, "aa"), "generation": None},
                             "b_metrics.json": metrics_document("disentangled", "b", 0.02, "bb")})
    code, out, err = run_summarize(folder)
    assert code == 0 and "Traceback" not in err, err
    assert f"note: {folder / 'a_metrics.json'} holds no generation metrics (null)" in out
    assert json.loads((folder / "comparison_results.json").read_text())["Baseline VAE"]["mse"] == 0.03


def test_a_run_whose_prior_was_refitted_is_one_run_not_two_seeds(tmp_path):
    """Issue 33, item 3: a refitted prior changes the checkpoint file's hash but not its weights; a run
    evaluated before and after the refit counts once. Files written before the weights hash still read."""
    folder = tmp_path / "eval_results"
    write_documents(folder, {
        "before_metrics.json": metrics_document("baseline", "baseline_vae", 0.03, "file1", weights_sha256="w1"),
        "after_metrics.json": metrics_document("baseline", "baseline_vae", 0.03, "file2", weights_sha256="w1"),
        "seed43_metrics.json": metrics_document("baseline", "seed43", 0.04, "file3", weights_sha256="w2"),
        "older_metrics.json": metrics_document("lstm", "lstm_vae", 0.05, "file4"),  # before the weights hash
    })
    code, out, err = run_summarize(folder)
    assert code == 0, err
    assert out.count("a repeat evaluation, not another seed") == 1
    results = json.loads((folder / "comparison_results.json").read_text())
    assert results["Baseline VAE"]["num_runs"] == 2 and results["LSTM-VAE"]["num_runs"] == 1
