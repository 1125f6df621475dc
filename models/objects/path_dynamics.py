"""A learned dynamics of one object's position: the mode path of the object models' predictions.

The path prior (:class:`models.fitted_prior.PathPrior`) draws whole blocks of a path from a Gaussian mixture;
its mode path, the most probable component's conditional mean, is a coarse model of where an object bounces:
on the demo's learned run it is 1.8 px off at the first predicted frame and 8 px at the tenth
(benchmarks/NOTES.md row 121). This module learns the next step instead: a mixture density network (Bishop
1994) reads an object's last C positions (the last one and its C - 1 steps) and gives a Gaussian mixture over
its next step. It is fitted ex post, like the rest of the fitted prior, to the model's own posterior paths
(training videos twice the training length where the data are generated: the localiser runs on any length,
and longer paths hold more bounces), by maximum likelihood with Adam, in seconds.

A deterministic prediction rolls the most probable component's mean forward one frame at a time. Near a
wall a digit then bounces or goes on, never half of each: the mean of the mixture (the regression of an MLP
on the next step) does half of each, and rolled out it slows to a stop (row 122). A stochastic prediction
draws each step's component (by its weight, sharpened by :data:`DRAW_TEMPERATURE`) and takes its mean (row
132: the best of 10 by SSIM beats the mode path, where the path mixture's draws did not). Stored as tensors and
plain values, so a checkpoint still loads with ``weights_only=True``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

CONTEXT = 9  # positions read: at most the training videos' frames less one (row 122: 3, 6, 9, 10 tried)
COMPONENTS = 8  # of the next step's mixture (4 and 8 tried: 8 kept the speeds better far out, row 123)
HIDDEN = 128
STEPS = 3000  # Adam steps of the fit, batches of BATCH steps drawn from every path's every window ...
PASSES = 100  # ... and at most this many passes over them (a small fit stops sooner)
BATCH = 1024
LEARNING_RATE = 3e-3  # cosine-annealed to 0 over the fit
POSITION_SCALE = 4.0  # inputs: positions and steps in [-1, 1] units times this
STEP_SCALE = 16.0  # outputs: a step in [-1, 1] units times this (the demo's 3.5-px step of a 64-px frame: 1.75)
LOG_SCALE_RANGE = (-7.0, 3.0)  # of each component's spread, in STEP_SCALE units
# A draw's component is chosen by its weight to the power 1 / DRAW_TEMPERATURE (renormalised): at 1 the rare
# components (the paths' jumps, where a slot lost its object) are drawn as often as fitted and the drawn speeds
# drift from the data's far out (row 132: W1 up to 0.58 px learned, 1.76 tracker); at 0.5, 0.21 and 0.36
DRAW_TEMPERATURE = 0.5


class PathDynamics:
    """One object's next position from its last ``context`` positions (module docstring).

    Args:
        context: C, the positions it reads (at least 2: a position and a step).
        components: M, of the next step's Gaussian mixture (diagonal).
        hidden: width of the network's two hidden layers.
        refine_steps: a record of how its training paths were made: the steps of the model's
            ``refine_positions`` that refined them (0: as encoded). It changes nothing here.
    """

    def __init__(self, context: int = CONTEXT, components: int = COMPONENTS, hidden: int = HIDDEN,
                 refine_steps: int = 0) -> None:
        if int(context) < 2 or int(components) < 1 or int(hidden) < 1 or int(refine_steps) < 0:
            raise ValueError(f"path dynamics need a context of at least 2 positions, at least one component, "
                             f"a positive width and refine_steps >= 0, got {context}, {components}, {hidden}, "
                             f"{refine_steps}")
        self.context, self.components, self.hidden = int(context), int(components), int(hidden)
        self.refine_steps = int(refine_steps)
        self.net = nn.Sequential(nn.Linear(2 * self.context, self.hidden), nn.SiLU(),
                                 nn.Linear(self.hidden, self.hidden), nn.SiLU(),
                                 nn.Linear(self.hidden, 5 * self.components))

    def _inputs(self, window: Tensor) -> Tensor:
        """``(N, C, 2)`` positions to ``(N, 2C)``: the last position, then the C - 1 steps, scaled."""
        steps = window[:, 1:] - window[:, :-1]
        return torch.cat([window[:, -1], steps.flatten(1)], 1) * POSITION_SCALE

    def mixture(self, window: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The next step's mixture given ``(N, C, 2)`` positions: log weights ``(N, M)``, means and log spreads
        ``(N, M, 2)``, in ``STEP_SCALE`` units."""
        out = self.net(self._inputs(window.float())).view(-1, self.components, 5)
        return out[..., 0].log_softmax(-1), out[..., 1:3], out[..., 3:5].clamp(*LOG_SCALE_RANGE)

    def negative_log_likelihood(self, window: Tensor, step: Tensor) -> Tensor:
        """Mean over ``(N, C, 2)`` windows of ``-log p(step | window)``, ``step`` ``(N, 2)`` in [-1, 1] units
        (up to the constant of the scaling)."""
        log_weights, means, log_scales = self.mixture(window)
        scaled = (step.float() * STEP_SCALE)[:, None]
        log_probs = (-0.5 * ((scaled - means) / log_scales.exp()).pow(2) - log_scales
                     - 0.5 * math.log(2 * math.pi)).sum(-1) + log_weights
        return -log_probs.logsumexp(-1).mean()

    def mode_step(self, window: Tensor) -> Tensor:
        """``(N, 2)``: the most probable component's mean step after ``(N, C, 2)`` positions."""
        log_weights, means, _ = self.mixture(window)
        return means[torch.arange(means.shape[0], device=means.device), log_weights.argmax(-1)] / STEP_SCALE

    def drawn_step(self, window: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(N, 2)``: the mean step of a component drawn after ``(N, C, 2)`` positions, with probabilities
        its weight to the power ``1 / DRAW_TEMPERATURE``, renormalised (a bounce or none; no noise within the
        component)."""
        log_weights, means, _ = self.mixture(window)
        chosen = torch.multinomial((log_weights / DRAW_TEMPERATURE).softmax(-1), 1, generator=generator)[:, 0]
        return means[torch.arange(means.shape[0], device=means.device), chosen] / STEP_SCALE

    @torch.no_grad()
    def roll(self, paths: Tensor, extra: int, bounds: Tensor | None = None, sample: bool = False,
             generator: torch.Generator | None = None) -> Tensor:
        """``(N, t, 2)`` paths (t >= C) continued by ``extra`` mode steps (with ``sample``: steps of components
        drawn by their weights, :meth:`drawn_step`, from ``generator``), each kept in ``bounds`` (``(2, 2)``:
        the smallest, then the largest ``(x, y)``) when given: ``(N, t + extra, 2)``, in the paths' dtype."""
        if paths.ndim != 3 or paths.shape[-1] != 2 or paths.shape[1] < self.context:
            raise ValueError(f"path dynamics continue (N, t, 2) paths of at least {self.context} frames, got "
                             f"{tuple(paths.shape)}")
        self.net.to(paths.device)
        track = paths.float()
        low, high = (None, None) if bounds is None else bounds.to(track)
        for _ in range(int(extra)):
            window = track[:, -self.context:]
            following = track[:, -1] + (self.drawn_step(window, generator) if sample else self.mode_step(window))
            if bounds is not None:
                following = torch.maximum(torch.minimum(following, high), low)
            track = torch.cat([track, following[:, None]], 1)
        return torch.cat([paths, track[:, paths.shape[1]:].to(paths.dtype)], 1)

    @classmethod
    def fit(cls, paths: Tensor, context: int = CONTEXT, seed: int = 0, steps: int = STEPS,
            components: int = COMPONENTS, hidden: int = HIDDEN, refine_steps: int = 0,
            log: Callable[[str], None] | None = None) -> PathDynamics:
        """Fit to ``(M, T, 2)`` paths (every window of ``min(context, T - 1)`` positions and the step after it),
        by maximum likelihood: ``steps`` Adam steps (at most :data:`PASSES` passes over the windows) on batches
        drawn with a generator seeded by ``seed``; ``refine_steps`` records how the paths were refined."""
        if paths.ndim != 3 or paths.shape[-1] != 2 or paths.shape[1] < 3 or paths.shape[0] < 1:
            raise ValueError(f"path dynamics are fitted to (M, T, 2) paths of at least 3 frames, got "
                             f"{tuple(paths.shape)}")
        started = time.perf_counter()
        context = min(int(context), paths.shape[1] - 1)
        paths = paths.detach().float().cpu()
        windows = torch.cat([paths[:, start - context:start] for start in range(context, paths.shape[1])])
        following = torch.cat([paths[:, start] - paths[:, start - 1] for start in range(context, paths.shape[1])])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            dynamics = cls(context, components, hidden, refine_steps)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(dynamics.net.parameters(), lr=LEARNING_RATE)
        steps = min(int(steps), math.ceil(PASSES * windows.shape[0] / BATCH))
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
        with torch.enable_grad():
            for _ in range(steps):
                rows = torch.randint(0, windows.shape[0], (min(BATCH, windows.shape[0]),), generator=generator)
                loss = dynamics.negative_log_likelihood(windows[rows], following[rows])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
        dynamics.net.eval().requires_grad_(False)
        if log is not None:
            log(f"path dynamics: {components}-component mixture density network on {windows.shape[0]} steps of "
                f"{paths.shape[0]} paths of {paths.shape[1]} frames, context {context}, in "
                f"{time.perf_counter() - started:.1f} s")
        return dynamics

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only."""
        return {"context": self.context, "components": self.components, "hidden": self.hidden,
                "refine_steps": self.refine_steps,
                "weights": {name: value.detach().cpu().clone() for name, value in self.net.state_dict().items()}}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PathDynamics:
        """Rebuild from :meth:`state_dict` (one written before ``refine_steps`` was recorded reads 0);
        ``ValueError`` for a malformed one."""
        keys = {"context", "components", "hidden", "weights"}
        if not isinstance(state, Mapping) or not keys <= set(state) <= keys | {"refine_steps"}:
            raise ValueError("path dynamics need the keys context, components, hidden and weights (and "
                             "refine_steps), no other")
        dynamics = cls(int(state["context"]), int(state["components"]), int(state["hidden"]),
                       int(state.get("refine_steps", 0)))
        weights = state["weights"]
        if not isinstance(weights, Mapping) or not all(isinstance(value, Tensor) for value in weights.values()):
            raise ValueError("path dynamics' weights must be a mapping of tensors")
        if not all(bool(torch.isfinite(value).all()) for value in weights.values()):
            raise ValueError("path dynamics' weights hold NaN or infinite values")
        try:
            dynamics.net.load_state_dict(dict(weights))
        except RuntimeError as error:
            raise ValueError(f"path dynamics' weights do not fit their sizes: {str(error).splitlines()[0]}") from None
        dynamics.net.eval().requires_grad_(False)
        return dynamics
