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
