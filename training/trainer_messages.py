"""What a training run tells its user: the one-line summary of an epoch, and what to change (in terms of
``python -m training.train``'s options) after a non-finite loss, gradient or weight."""

from __future__ import annotations

import math

from torch import nn


def non_finite_hints(metrics: dict[str, float], module: nn.Module, lr: float) -> str:
    """What to change, from what overflowed: the loss alone (a loss weight) or its terms (divergence).

    Args:
        metrics: the step's (or validation's) ``loss``, its terms and maybe ``grad_norm``.
        module: the model (its ``config.beta``, if any, is named).
        lr: the learning rate in use.
    """
    terms = {key: value for key, value in metrics.items() if key not in ("loss", "grad_norm")}
    # Finite terms whose weighted sum is infinite: the sum overflowed (finite terms never sum to NaN).
    if math.isinf(metrics.get("loss", 0.0)) and terms and all(map(math.isfinite, terms.values())):
        beta = getattr(getattr(module, "config", None), "beta", None)
        weight = f"--beta {beta:g}" if isinstance(beta, float | int) else "a loss weight"
        return (f"the loss overflowed although its terms ({', '.join(terms)}) are finite: the KL weight "
                f"({weight}) times the KL exceeds the float range; lower --beta")
    return (f"lower --lr (now {lr:g}), check the data (videos must be finite, in [0, 1]), "
            "try --recon-loss bce or --grad-clip 1.0")


def non_finite_weights_hint(lr: float) -> str:
    """What to change after non-finite weights."""
    return f"lower --lr (now {lr:g}) or try --grad-clip 1.0"


def format_row(row: dict[str, float], epochs: int, is_best: bool) -> str:
    """The one-line summary of an epoch."""
    def part(prefix: str) -> str:
        extras = ", ".join(f"{key[len(prefix):]} {value:.4g}" for key, value in row.items()
                           if key.startswith(prefix) and key not in (prefix + "loss",))
        return f"{prefix.rstrip('_')} loss {row.get(prefix + 'loss', math.nan):.4g} ({extras})"

    return (f"epoch {row['epoch']}/{epochs} | {part('train_')} | {part('val_')} | lr {row['lr']:.3g} | "
            f"kl x{row['kl_scale']:.2f} | {row['videos_per_s']:.0f} videos/s | {row['seconds']:.1f} s"
            + (" | best" if is_best else ""))
