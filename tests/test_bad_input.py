"""Bad input, full disks and interrupts at the edges of evaluate.py and summarize.py (issue 22): one line
naming the problem and the fix, the documented exit status, and nothing half-written."""

from __future__ import annotations

import contextlib
import errno
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
            "--no-judges", *more]


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
    json.loads((save_dir / "tiny_run_metrics.json").read_text())  # written before, and whole
    assert not (save_dir / "tiny_run_samples.png").exists()
    assert not [path for path in save_dir.iterdir() if path.name.startswith(".")]  # no temporary file left


def test_an_interrupt_during_the_evaluation_is_one_line_and_exit_130(tmp_path, checkpoint, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    code, error = run_evaluate(*cheap_args(checkpoint, tmp_path / "out"))
    assert code == 130 and error.count("\n") == 1 and "interrupted" in error
