"""Atomic writes: the final file appears whole or not at all, with a plain file's permissions."""

import errno
import os
import tempfile

import pytest
import torch

from utils.atomic import atomic_torch_save, atomic_write, atomic_write_json


def test_the_file_gets_a_plain_files_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    written = atomic_write_json(tmp_path / "sub" / "result.json", {"value": float("nan")})
    assert written.read_text().strip() == '{\n  "value": NaN\n}'
    assert os.stat(written).st_mode & 0o777 == os.stat(plain).st_mode & 0o777


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"previous")

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"previous"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_full_disk_during_torch_save_raises_the_real_os_error(tmp_path, monkeypatch):
    """torch's zip writer turns the write's ENOSPC into ``RuntimeError: ... unexpected pos``; the caller
    must see "No space left on device" instead, with the previous file intact."""
    target = tmp_path / "last.pt"
    atomic_torch_save({"weights": torch.zeros(4)}, target)
    previous = target.read_bytes()
    real_open = tempfile.NamedTemporaryFile

    class FullDisk:
        """A temporary file on a disk with room for 1,000 bytes."""

        def __init__(self, handle):
            self.handle, self.written = handle, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(data)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda **kwargs: FullDisk(real_open(**kwargs)))
    with pytest.raises(OSError, match="No space left on device") as caught:
        atomic_torch_save({"weights": torch.zeros(10_000)}, target)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_bytes() == previous
    assert sorted(path.name for path in tmp_path.iterdir()) == ["last.pt"]


# ----------------------------------------------------------------------------------------------------
# Figures, GIFs and MP4s go through the same rule as the checkpoints (issue 22, item 4)


def _half_written(fault):
    """``Figure.savefig`` that writes part of a file, then fails as a kill or a full disk would."""
    def savefig(self, handle, *args, **kwargs):
        handle.write(b"\x89PNG half a file")
        raise fault
    return savefig


@pytest.mark.parametrize("fault", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device")])
def test_a_figure_interrupted_mid_write_leaves_the_previous_figure(tmp_path, monkeypatch, fault):
    from matplotlib.figure import Figure

    from utils.visualization import save_figure

    figure = Figure(figsize=(1, 1))
    figure.subplots().plot([0, 1])
    target = tmp_path / "reconstructions.png"
    save_figure(figure, target)
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert set(before) == {"reconstructions.png", "reconstructions.pdf"}
    monkeypatch.setattr(Figure, "savefig", _half_written(fault))
    with pytest.raises(type(fault)) as raised:
        save_figure(figure, target)
    if isinstance(fault, OSError):
        assert raised.value.filename == str(target) and raised.value.errno == errno.ENOSPC
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # no temporary left


def test_a_gif_interrupted_mid_write_leaves_the_previous_gif(tmp_path, monkeypatch):
    from PIL import Image

    from utils.animation import write_gif

    frames = [Image.new("L", (4, 4), color=value) for value in (0, 255)]
    target = write_gif(frames, tmp_path / "swaps.gif", fps=4)
    before = target.read_bytes()

    def full_disk(self, handle, *args, **kwargs):
        handle.write(b"GIF89a half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    with pytest.raises(OSError, match="No space left") as raised:
        write_gif(frames, target, fps=4)
    assert raised.value.filename == str(target)
    assert target.read_bytes() == before and [path.name for path in tmp_path.iterdir()] == ["swaps.gif"]


def test_atomic_output_moves_a_path_written_file_into_place_or_leaves_nothing(tmp_path):
    from utils.atomic import atomic_output

    target = tmp_path / "video.mp4"
    with atomic_output(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".mp4" and temporary != target
        temporary.write_bytes(b"first")
    assert target.read_bytes() == b"first"
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as temporary:
        temporary.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"first" and [path.name for path in tmp_path.iterdir()] == ["video.mp4"]


def test_the_next_write_into_a_folder_removes_the_temporaries_of_killed_writers_and_says_so(tmp_path, caplog):
    """Issue 33, item 12: a kill -9 mid-write leaves ``.NAME.PID.XXXXXXXX.tmp``; the next process that writes
    into the folder removes those of writers that no longer run (and no one else's), and logs it."""
    import subprocess
    import sys
    import time

    from utils import atomic

    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(ended.stdout)
    old = time.time() - 7200
    stale = [tmp_path / f".last.pt.{dead}.abcdefgh.tmp", tmp_path / f".samples.png.{dead}.ab_d1234.tmp.png",
             tmp_path / ".best_model.pt.zyxwvuts.tmp"]  # the last one named by older code (no pid), 2 h old
    kept = [tmp_path / ".last.pt.1.abcdefgh.tmp",  # pid 1 runs: a live writer's
            tmp_path / f".metrics.json.{os.getpid()}.abcdefgh.tmp",  # this process's own
            tmp_path / "notes.tmp", tmp_path / ".hidden"]  # not temporaries of atomic writes
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
        os.utime(path, (old, old))
    fresh = tmp_path / f".other.pt.{dead}.abcdefgh.tmp"  # written after this process started: left alone
    fresh.write_bytes(b"x")
    with caplog.at_level("WARNING", logger="utils.atomic"):
        atomic_write_json(tmp_path / "result.json", {"value": 1})
    assert not any(path.exists() for path in stale) and all(path.exists() for path in kept) and fresh.exists()
    assert "removed 3 temporary files" in caplog.text and str(tmp_path) in caplog.text
    assert not list(tmp_path.glob(f".result.json.{os.getpid()}.*"))  # its own temporary went into place
    with tempfile.NamedTemporaryFile(dir=tmp_path, prefix=atomic._temporary_prefix(tmp_path / "x"), suffix=".tmp"):
        assert atomic.remove_stale_temporaries(tmp_path) == []  # swept once per folder per process
