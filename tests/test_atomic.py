"""Atomic writes: the final file appears whole or not at all, with a plain file's permissions."""

import os

import pytest

from utils.atomic import atomic_write, atomic_write_json


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
