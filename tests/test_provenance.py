"""utils.provenance: the commit, command, packages and machine that every result records."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from utils import provenance

CPUINFO = """processor\t: 0
model name\t: Example CPU 9000
flags\t\t: fpu sse avx2 avx512f avx512_bf16

processor\t: 1
model name\t: Example CPU 9000
flags\t\t: fpu sse avx2 avx512f avx512_bf16
"""


def test_git_state_is_the_checkout_head():
    head = subprocess.run(["git", "-C", str(provenance.REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    state = provenance.git_state()
    if head.returncode != 0:  # an exported tree: nothing to compare with
        assert state["commit"] == "unknown"
        return
    assert state["commit"] == head.stdout.strip()
    status = subprocess.run(["git", "-C", str(provenance.REPO), "status", "--porcelain"], capture_output=True,
                            text=True).stdout
    assert state["dirty"] is bool(status.strip())


def test_git_state_outside_a_repository_or_without_git(tmp_path, monkeypatch):
    assert provenance.git_state(tmp_path) == {"commit": "unknown", "dirty": "unknown", "changed": []}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable to be found
    assert provenance.git_state()["commit"] == "unknown"
    assert provenance.collect()["git"]["commit"] == "unknown"  # and collect does not raise


def test_git_state_sees_an_uncommitted_change(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "a.txt").write_text("one")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    clean = provenance.git_state(tmp_path)
    assert clean["dirty"] is False and len(clean["commit"]) == 40
    (tmp_path / "a.txt").write_text("two")
    assert provenance.git_state(tmp_path) == {"commit": clean["commit"], "dirty": True, "changed": ["a.txt"]}


def test_cpu_description_reads_model_and_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO)
    cpu = provenance.cpu_description(cpuinfo)
    assert cpu["model"] == "Example CPU 9000"
    assert cpu["flags"] == {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": False, "amx_tile": False}
    missing = provenance.cpu_description(tmp_path / "absent")
    assert missing["model"] and set(missing["flags"].values()) == {"unknown"}


def test_collect_records_versions_and_command():
    record = provenance.collect()
    assert record["packages"]["torch"] == torch.__version__
    assert record["packages"]["numpy"] == np.__version__
    assert record["python"] == sys.version.split()[0]
    assert "pytest" in record["command"]  # this process's command line
    lines = provenance.summary_lines(record)
    assert lines[0].startswith(f"commit `{record['git']['commit']}`")
    assert any(line.startswith("CPU ") and "avx512_bf16" in line for line in lines)
