"""Device selection: ``auto`` picks CUDA, then Apple's MPS, then the CPU."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The torch device for a name, checking that it exists here.

    Args:
        name: ``"auto"``, ``"cuda"`` (or ``"cuda:N"``), ``"mps"``, ``"cpu"``, or a ``torch.device``.

    Raises:
        ValueError: an unknown name, or a device this machine does not have (the message says which
            devices it has).
    """
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}; choose one of {list(DEVICE_CHOICES)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here; {_available()}")
    if kind == "mps" and not _mps_available():
        raise ValueError(f"device 'mps' asked for, but MPS is not available here; {_available()}")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (so bf16 autocast pays): CUDA GPUs with bf16, and CPUs
    with AVX-512 BF16 or AMX (e.g. Intel Sapphire Rapids), where oneDNN runs bf16 convolutions and
    matrix products several times faster than fp32. Elsewhere bf16 is emulated and slower."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the guard
        return any(getattr(torch.cpu, check, lambda: False)() for check in checks)
    return False


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _available() -> str:
    found = ["cpu"] + (["cuda"] if torch.cuda.is_available() else []) + (["mps"] if _mps_available() else [])
    return f"available: {found} (use --device auto to pick the best)"


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (for honest timings on CUDA and MPS)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
