"""An ex-post fitted prior: a Gaussian mixture on the aggregate posterior, fitted after training.

"From variational to deterministic autoencoders" (Ghosh et al. 2020, section 4, "ex-post density
estimation"): a VAE's aggregate posterior ``q(z) = E_x q(z | x)`` rarely fills its N(0, I) prior, so
codes drawn from N(0, I) land where the decoder was never trained and decode to scribbles. After
training, fit a density to the codes the encoder really produces and sample from that instead.

The rule, the same for every model, in the ``split`` form of :mod:`models.base` (content ``(B, Dc)``,
motion ``(B, T, Dm)``):

* **content**: a Gaussian mixture fitted to the posterior means of the content codes of training videos
  (the Disentangled VAE's content code; the time-average of z for the Baseline VAE and the LSTM-VAE), per
  **content unit**: a model whose content code is the concatenation of K exchangeable per-object codes
  (``content_slots`` = K: the Disentangled VAE's object architectures, one code per digit) gets one
  mixture of ``Dc / K`` dimensions fitted to every object's code, and a sample draws its K objects
  independently (the data's digits are drawn independently too); every other model has one unit, the
  whole code;
* **motion**, per **motion unit**: a model whose motion code places K objects (``object_slots`` = K: the
  Disentangled VAE's object architectures, whose decoder reads nothing of the motion code but each object's
  position in every frame) gets one full-covariance mixture fitted to every object's path, ``2 F`` numbers
  for the ``F`` frames of the training videos (:class:`PathPrior`), and a sample draws its K paths
  independently (the data's digits move independently too) and writes them into the motion code
  (``model.with_object_positions``); a video longer than ``F`` frames continues ``F - 2`` frames at a time,
  each block drawn whole from the mixture's conditional on the last two frames. Every frame is kept inside
  the box the training paths' positions stayed in (their smallest and largest x and y): a path, or a
  continued block, that leaves it is drawn again (the mixture restricted to the box; about 1 path in 20 left
  it in the slot model, benchmarks/NOTES.md row 51, and a digit placed off the canvas is cut and misread).
  A prediction's mode path (``model.predict`` without samples) is rolled forward instead by the path
  dynamics, a network over each object's next step fitted to the same model's paths on longer training
  videos (:mod:`models.objects.path_dynamics`; format 5), their positions refined as a prediction's are
  (format 6: ``fit_prior(dynamics_refine_steps=...)``, recorded in the dynamics). Otherwise a model with a
  learned motion prior (``has_motion_prior``: the LSTM-VAE's recurrent prior) keeps it, and a model whose motion prior is
  N(0, I) per frame (the Baseline VAE) gets a second mixture fitted to its per-frame motion codes, drawn
  independently per frame (its prior had no temporal model before either).

The content is drawn at a **temperature** (:data:`DEFAULT_CONTENT_TEMPERATURE`, 0.4): a component is chosen
by its weight as fitted, and its draw is ``mu_k + temperature * L_k eps``, the component's spread scaled down
(1 draws the fitted mixture itself; 0 draws its component means; at most
:data:`MAX_CONTENT_TEMPERATURE`, 4). The diagonal components are wide in
directions along which the codes do not vary together, so full-spread draws leave the codes' manifold and
decode to blends; on the object models, drawn nearer the components' means, the samples come closer to the
data as a distribution (Fréchet judge distance and recall) and read better (benchmarks/NOTES.md row 50;
0.4 had the smallest Fréchet distance summed over three runs of seed 42). Motion is drawn at temperature 1:
a colder motion prior slows the digits (row 41).

The content's defaults, diagonal covariances with 200 components, come from benchmarks/NOTES.md rows 38-42
and 48-49: diagonal covariances drew far more data-like samples than full ones (though full ones reach a
far higher held-out likelihood), and among diagonal mixtures the held-out likelihood of the object codes
peaks near 200 components, where the samples agree. The paths take 100 components with full covariances
(:data:`PATH_COMPONENTS`, :data:`PATH_COVARIANCE`): a path's frames are strongly correlated, and with
diagonal ones the drawn paths jitter from frame to frame (rows 43, 45). Each mixture is fitted with a fixed
number of EM steps in float64 torch from a seeded k-means++ start (:func:`fit_gaussian_mixture`, in matrix
products: seconds, where the first version took minutes, benchmarks/NOTES.md rows 56-58, which also say why
it is kept over scikit-learn's ``GaussianMixture``); :func:`prior_codes` gathers the codes and
:func:`fit_prior` fits them. The prior travels
inside the checkpoint under ``"fitted_prior"`` (tensors and plain values only, so the checkpoint still
loads with ``weights_only=True``); :func:`models.checkpoint.load_model` attaches it, after which
``model.sample`` and ``model.sample_factors`` use it. A model without one samples its original prior.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from models.config import check_finite_number, check_non_negative_int
from models.objects.path_dynamics import PathDynamics

COVARIANCES = ("full", "diag")
# 2 added content_slots (a version-1 prior reads as one content unit); 3 added the per-object path prior;
# 4 added the content temperature and the paths' box (versions 1-3 drew at temperature 1, with no box); 5 added
# the path dynamics; 6 fits them to refined paths (a version-5 prior's dynamics read the encoder's positions)
FORMAT_VERSION = 6
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
PATH_COVARIANCE = "full"
DEFAULT_COMPONENTS = 200  # the content's (and a per-frame motion mixture's)
PATH_COMPONENTS = 100
DEFAULT_COVARIANCE = "diag"
DEFAULT_CONTENT_TEMPERATURE = 0.4
# The content temperatures a prior accepts: 0 (the component means) to 4 (four times the fitted spread, far
# past where draws still decode to digits); a larger one draws codes that overflow the decoder to NaN.
MAX_CONTENT_TEMPERATURE = 4.0
DEFAULT_STEPS = 30
DEFAULT_VIDEOS = 2000
# The path dynamics are fitted to paths whose positions the model refined on their frames
# (``DisentangledVAE.refine_positions``), as a prediction's observed positions are: the localiser's jitter in a
# network's inputs shrinks the steps it learns, and its rolled paths slow down (benchmarks/NOTES.md row 130:
# seed 43's largest speed W1 0.55 px unrefined, 0.22 after 10 steps, 0.25 after 20; about 40 s more per fit on
# two threads, row 131).
DYNAMICS_REFINE_STEPS = 10
REDRAWS = 100  # times a path prior draws a path again that leaves the training paths' box (PathPrior)
PROGRESS_SECONDS = 10  # a fit with a log says how far its encoding is this often
CONTEXT_FRAMES = 2  # the frames a path prior's continuation is conditioned on (PathPrior.continue_paths)


@dataclass
class GaussianMixture:
    """A mixture of K Gaussians in D dimensions.

    Attributes:
        weights: ``(K,)`` mixing weights, summing to 1.
        means: ``(K, D)``.
        scales: ``(K, D, D)`` lower Cholesky factors of the covariances (``"full"``) or ``(K, D)`` standard
            deviations (``"diag"``).
        covariance: ``"full"`` or ``"diag"``.
    """

    weights: Tensor
    means: Tensor
    scales: Tensor
    covariance: str

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def components(self) -> int:
        return int(self.means.shape[0])

    def log_prob(self, points: Tensor) -> Tensor:
        """``log p(x)`` of ``(N, D)`` points, ``(N,)``."""
        return torch.logsumexp(_component_log_probs(points.to(self.means), self), dim=1)

    def sample(self, num_samples: int, generator: torch.Generator | None = None,
               device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
               temperature: float = 1.0) -> Tensor:
        """``(num_samples, D)`` draws: a component by its weight, then its Gaussian (``generator`` on ``device``)
        with its spread scaled by ``temperature`` (``mu_k + temperature * L_k eps``; 0 draws the means)."""
        device = torch.device(device) if device is not None else self.means.device
        weights = self.weights.to(device=device, dtype=torch.float64)
        means = self.means.to(device=device, dtype=torch.float64)
        scales = self.scales.to(device=device, dtype=torch.float64)
        chosen = torch.multinomial(weights, num_samples, replacement=True, generator=generator)  # (N,)
        noise = torch.randn(num_samples, self.dim, generator=generator, device=device, dtype=torch.float64)
        if self.covariance == "full":
            offsets = (scales[chosen] @ noise[:, :, None])[:, :, 0]  # L_k eps, (N, D)
        else:
            offsets = scales[chosen] * noise
        return (means[chosen] + temperature * offsets).to(dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.cpu(), "means": self.means.cpu(), "scales": self.scales.cpu(),
                "covariance": self.covariance}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> GaussianMixture:
        """Rebuild a mixture; ``ValueError`` naming what is wrong for a malformed state."""
        if not isinstance(state, Mapping) or set(state) != {"weights", "means", "scales", "covariance"}:
            raise ValueError("a Gaussian mixture needs exactly the keys weights, means, scales, covariance")
        covariance = state["covariance"]
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
        weights, means, scales = (state[key] for key in ("weights", "means", "scales"))
        if not all(isinstance(value, Tensor) for value in (weights, means, scales)):
            raise ValueError("a Gaussian mixture's weights, means and scales must be tensors")
        components, dim = means.shape if means.ndim == 2 else (-1, -1)
        expected = (components, dim, dim) if covariance == "full" else (components, dim)
        if weights.shape != (components,) or tuple(scales.shape) != expected:
            raise ValueError(
                f"mismatched Gaussian mixture shapes: weights {tuple(weights.shape)}, means "
                f"{tuple(means.shape)}, scales {tuple(scales.shape)} (expected {expected})"
            )
        for name, value in (("weights", weights), ("means", means), ("scales", scales)):
            _check_finite(name, value)
        if bool((weights < 0).any()) or not float(weights.sum()) > 0:
            raise ValueError("a Gaussian mixture's weights must be at least 0, and not all 0")
        return cls(weights, means, scales, covariance)


def _check_finite(what: str, values: Tensor) -> None:
    """``ValueError`` naming ``what`` and the count of its NaN or infinite values, if it holds any."""
    if values.is_floating_point():
        bad = int((~torch.isfinite(values)).sum())
        if bad:
            raise ValueError(f"{what} hold {bad} NaN or infinite value{'s' if bad > 1 else ''}")


def _component_log_probs(points: Tensor, mixture: GaussianMixture) -> Tensor:
    """``log w_k + log N(x_n | mu_k, Sigma_k)``, ``(N, K)``.

    A diagonal covariance's Mahalanobis distance is expanded into matrix products
    (:func:`_mahalanobis_expanded`), never forming the ``(N, K, D)`` differences of every point to every mean
    (820 MB for the Baseline VAE's 2,000 codes of 256 numbers and 200 components: the whole cost of the EM
    before issue 32, which now uses the expansion for full covariances too). A full one is solved exactly
    here, one triangular solve batched over the components (the paths' 20 numbers: small).
    """
    if mixture.covariance == "full":
        # Solve L_k y = (x - mu_k) for every component at once (a (D, N) right-hand side each): |y|^2 is the
        # Mahalanobis distance.
        centred = (points[None] - mixture.means[:, None]).transpose(1, 2)  # (K, D, N)
        solved = torch.linalg.solve_triangular(mixture.scales, centred, upper=False)  # (K, D, N)
        mahalanobis = solved.pow(2).sum(1).T  # (N, K)
    else:
        mahalanobis = _mahalanobis_expanded(points, mixture)
    return _log_probs_from(mahalanobis, mixture)


def _log_probs_from(mahalanobis: Tensor, mixture: GaussianMixture) -> Tensor:
    """``log w_k + log N`` from the ``(N, K)`` squared Mahalanobis distances."""
    if mixture.covariance == "full":
        log_det = 2 * torch.log(torch.diagonal(mixture.scales, dim1=-2, dim2=-1)).sum(-1)  # (K,)
    else:
        log_det = 2 * torch.log(mixture.scales).sum(-1)
    return torch.log(mixture.weights)[None] - 0.5 * (mahalanobis + log_det[None]
                                                     + mixture.dim * math.log(2 * math.pi))


def _mahalanobis_expanded(points: Tensor, mixture: GaussianMixture) -> Tensor:
    """``(x_n - mu_k)^T Sigma_k^-1 (x_n - mu_k)``, ``(N, K)``, as ``x^T P x - 2 x^T P mu + mu^T P mu`` with
    ``P = Sigma_k^-1``: matrix products only (scikit-learn's ``GaussianMixture`` expands the same way). In
    float64 on points centred on their mean (as the EM fits them) the cancellation costs ~1e-12 relative."""
    if mixture.covariance == "full":
        dim = mixture.dim
        eye = torch.eye(dim, dtype=mixture.scales.dtype).expand_as(mixture.scales)
        inverse = torch.linalg.solve_triangular(mixture.scales, eye, upper=False)  # L_k^-1, (K, D, D)
        precision = inverse.transpose(1, 2) @ inverse  # (K, D, D)
        precise_means = (precision @ mixture.means[:, :, None])[:, :, 0]  # P_k mu_k, (K, D)
        quadratic = torch.cat([outer @ precision.flatten(1).T for outer in _outer_products(points)])  # (N, K)
    else:
        precision = mixture.scales.pow(-2)  # (K, D)
        precise_means = mixture.means * precision
        quadratic = points.pow(2) @ precision.T  # (N, K)
    offsets = (mixture.means * precise_means).sum(1)  # mu_k^T P_k mu_k, (K,)
    return (quadratic - 2 * points @ precise_means.T + offsets[None]).clamp_min(0)


def _outer_products(points: Tensor, limit: int = 1 << 24) -> Iterable[Tensor]:
    """``x_n x_n^T`` of consecutive blocks of points, flattened, ``(rows, D * D)``, at most ``limit`` numbers a
    block (one block for the paths' 20 numbers; a full mixture of 256-number codes would need 1 GB at once)."""
    dim = points.shape[1]
    rows = max(1, limit // (dim * dim))
    for start in range(0, points.shape[0], rows):
        block = points[start:start + rows]
        yield (block[:, :, None] * block[:, None, :]).flatten(1)


def initial_components(points: Tensor, components: int, covariance: str, generator: torch.Generator,
                       ridge: float) -> tuple[Tensor, Tensor]:
    """EM's start: k-means++ means (each next one a point drawn with probability proportional to its squared
    distance to the nearest chosen) and every component's scale that of the data's covariance plus ``ridge``.

    Returns:
        ``(means (K, D), scales)``: scales ``(K, D)`` standard deviations, or ``(K, D, D)`` Cholesky factors for
        ``covariance="full"``.
    """
    count, dim = points.shape
    chosen = [int(torch.randint(count, (1,), generator=generator))]
    nearest = (points - points[chosen[0]]).pow(2).sum(1)
    for _ in range(1, components):
        total = nearest.sum()
        probabilities = nearest / total if total > 0 else torch.full_like(nearest, 1.0 / count)
        chosen.append(int(torch.multinomial(probabilities, 1, generator=generator)))
        nearest = torch.minimum(nearest, (points - points[chosen[-1]]).pow(2).sum(1))
    data_cov = torch.cov(points.T).reshape(dim, dim) + ridge * torch.eye(dim, dtype=points.dtype)
    if covariance == "full":
        return points[chosen].clone(), torch.linalg.cholesky(data_cov)[None].repeat(components, 1, 1)
    return points[chosen].clone(), torch.diagonal(data_cov).sqrt()[None].repeat(components, 1)


def fit_gaussian_mixture(points: Tensor, components: int = DEFAULT_COMPONENTS, covariance: str = DEFAULT_COVARIANCE,
                         steps: int = DEFAULT_STEPS, seed: int = 0, regularization: float = 1e-3) -> GaussianMixture:
    """Fit a Gaussian mixture to points by expectation-maximisation (Dempster et al. 1977), in float64.

    Start: k-means++ seeding (Arthur & Vassilvitskii 2007) of the means from ``seed``, equal weights, every
    covariance the data's. Then ``steps`` EM steps: responsibilities ``r_nk ∝ w_k N(x_n | mu_k, Sigma_k)``;
    ``w_k = mean_n r_nk``, ``mu_k = sum_n r_nk x_n / sum_n r_nk``, ``Sigma_k = sum_n r_nk (x_n - mu_k)(x_n -
    mu_k)^T / sum_n r_nk + eps I`` (only the diagonal for ``"diag"``), with ``eps = regularization`` times
    the data's mean variance, so a component that holds fewer points than dimensions stays invertible.

    Args:
        points: ``(N, D)`` codes.
        components: K (at most N).
        covariance: ``"full"`` or ``"diag"``.
        steps: EM steps.
        seed: seed of the k-means++ start (the result is a deterministic function of it and the points).
        regularization: the ridge added to every covariance, relative to the mean variance.

    Returns:
        The fitted :class:`GaussianMixture` (float64, on the CPU).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    points = torch.as_tensor(points).detach().to("cpu", torch.float64)
    if points.ndim != 2 or points.shape[0] < 2:
        raise ValueError(f"expected at least 2 points of shape (N, D), got {tuple(points.shape)}")
    if not torch.isfinite(points).all():
        raise ValueError("cannot fit a prior to non-finite codes")
    count, dim = points.shape
    components = max(1, min(int(components), count))
    generator = torch.Generator().manual_seed(seed)
    centre = points.mean(0)  # fitted about their mean: E[x x^T] - mu mu^T then loses nothing to cancellation
    points = points - centre
    ridge = regularization * float(points.var(dim=0).mean()) + 1e-12
    eye = torch.eye(dim, dtype=torch.float64)

    means, scales = initial_components(points, components, covariance, generator, ridge)
    mixture = GaussianMixture(torch.full((components,), 1.0 / components, dtype=torch.float64), means, scales,
                              covariance)
    for _ in range(steps):
        responsibilities = torch.softmax(_log_probs_from(_mahalanobis_expanded(points, mixture), mixture), dim=1)
        mass = responsibilities.sum(0) + 1e-10  # (K,)
        means = responsibilities.T @ points / mass[:, None]  # (K, D)
        # Each component's covariance is E_k[x x^T] - mu_k mu_k^T (only the diagonal for "diag"): matrix
        # products, where the differences of every point to every mean were (N, K, D).
        if covariance == "full":
            second_moments = torch.zeros(components, dim * dim, dtype=torch.float64)
            start = 0
            for outer in _outer_products(points):  # (rows, D * D)
                second_moments += responsibilities[start:start + outer.shape[0]].T @ outer
                start += outer.shape[0]
            second_moments = second_moments.view(-1, dim, dim) / mass[:, None, None]  # (K, D, D)
            covariances = second_moments - means[:, :, None] * means[:, None, :] + ridge * eye
            scales = torch.linalg.cholesky(covariances)
        else:
            second_moments = responsibilities.T @ points.pow(2) / mass[:, None]  # (K, D)
            scales = ((second_moments - means.pow(2)).clamp_min(0) + ridge).sqrt()
        mixture = GaussianMixture(mass / mass.sum(), means, scales, covariance)
    mixture.means = mixture.means + centre
    return mixture


@dataclass
class _GaussianDraw:
    """Draws of M Gaussians ``N(centre_m, scale_m scale_m^T)`` over a block of frames' positions ``(x_0, y_0,
    x_1, ...)``, for a boolean ``(M,)`` mask of rows: ``(rows, frames, 2)``."""

    centre: Tensor  # (M, 2 * frames)
    scale: Tensor  # (M, 2 * frames, 2 * frames)
    generator: torch.Generator | None

    def __call__(self, rows: Tensor) -> Tensor:
        noise = torch.randn(int(rows.sum()), self.centre.shape[1], 1, generator=self.generator,
                            device=self.centre.device, dtype=self.centre.dtype)
        return (self.centre[rows] + (self.scale[rows] @ noise)[:, :, 0]).view(-1, self.centre.shape[1] // 2, 2)


class PathPrior:
    """Where each of K objects is in every frame: a Gaussian mixture over one object's path of ``frames``
    positions, ``(x_0, y_0, x_1, y_1, ...)``, drawn independently for each object (module docstring).

    With ``bounds`` the prior is the mixture restricted to the box the training objects stayed in: a drawn
    path that leaves it anywhere is drawn again (rejection sampling, up to :data:`REDRAWS` times; a path
    still outside after that is clamped into the box, which needs a mixture with almost no mass inside it).

    Args:
        mixture: the mixture, of ``2 * frames`` dimensions.
        frames: F, the frames of the fitted paths.
        slots: K, the objects of a video.
        bounds: ``(2, 2)``: the smallest and the largest ``(x, y)`` of the training paths, or None (no box:
            the rule of format versions 1-3).
        dynamics: the learned next step of one object (:class:`models.objects.path_dynamics.PathDynamics`) that the
            mode path of :meth:`continue_paths` rolls forward, or None (the mixture's mode path: the rule of
            format versions 1-4).
    """

    def __init__(self, mixture: GaussianMixture, frames: int, slots: int, bounds: Tensor | None = None,
                 dynamics: PathDynamics | None = None) -> None:
        if int(frames) < 1 or int(slots) < 1 or mixture.dim != 2 * int(frames):
            raise ValueError(f"a path prior of {slots} objects over {frames} frames needs a mixture of "
                             f"{2 * int(frames)} dimensions, got {mixture.dim}")
        if bounds is not None and (not isinstance(bounds, Tensor) or tuple(bounds.shape) != (2, 2)
                                   or not bool((bounds[0] <= bounds[1]).all())):
            raise ValueError("a path prior's bounds must be a (2, 2) tensor: the smallest (x, y), then the "
                             "largest, each at least the smallest")
        self.mixture, self.frames, self.slots, self.bounds = mixture, int(frames), int(slots), bounds
        self.dynamics = dynamics

    @property
    def context(self) -> int:
        """C: the last frames a continuation is conditioned on (:meth:`continue_paths`; 0 for one-frame paths)."""
        return min(CONTEXT_FRAMES, self.frames - 1)

    def _whole(self, count: int, generator: torch.Generator | None, device: torch.device | str | None) -> Tensor:
        """``(count, F, 2)`` whole paths drawn from the mixture (not yet kept in the box)."""
        return self.mixture.sample(count, generator, device, torch.float64).view(count, self.frames, 2)

    def _outside(self, points: Tensor) -> Tensor:
        """``(M,)``: which of ``(M, t, 2)`` paths leave the box anywhere (none without bounds)."""
        if self.bounds is None:
            return torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
        low, high = self.bounds.to(points)
        return ((points < low) | (points > high)).flatten(1).any(1)

    def _clamped(self, points: Tensor) -> Tensor:
        """``(M, t, 2)`` points clamped into the box (unchanged without bounds)."""
        if self.bounds is None:
            return points
        low, high = self.bounds.to(points)
        return torch.maximum(torch.minimum(points, high), low)

    def _within(self, points: Tensor, redraw: Any) -> Tensor:
        """The ``(M, t, 2)`` paths, those that leave the box drawn again (``redraw(rows) -> (rows.sum(), t, 2)``
        for a boolean ``(M,)`` mask) until none does, at most :data:`REDRAWS` times; then any still outside
        clamped into it."""
        for _ in range(REDRAWS):
            outside = self._outside(points)
            if not bool(outside.any()):
                return points
            points = points.clone()
            points[outside] = redraw(outside)
        return self._clamped(points)

    def draw(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None,
             device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
        """``(N, T, K, 2)`` positions: K independent paths per video. The first ``min(T, F)`` frames are a
        draw of the mixture (its marginal when T < F); further frames are drawn in blocks from the mixture's
        conditional on the last two (:meth:`continue_paths`). With bounds, every frame stays in the box
        (class docstring)."""
        paths = self._within(self._whole(num_samples * self.slots, generator, device)[:, :num_frames],
                             lambda rows: self._whole(int(rows.sum()), generator, device)[:, :num_frames])
        if num_frames > self.frames:
            paths = self.continue_paths(paths, num_frames - self.frames, generator)
        paths = paths.view(num_samples, self.slots, num_frames, 2).transpose(1, 2)  # (N, T, K, 2)
        return paths.to(dtype)

    def continue_paths(self, paths: Tensor, extra: int, generator: torch.Generator | None = None,
                       mean: bool = False, context: int | None = None, dynamics_draws: bool = False) -> Tensor:
        """Extend ``(M, t, 2)`` paths (t >= C, the context: ``min(CONTEXT_FRAMES, F - 1)`` frames) by ``extra``
        frames, in blocks of ``F - C`` frames drawn jointly from the mixture's conditional given the last C
        positions (the mixture's first C frames stand for them, its other F - C for the block): component k
        is chosen with probability ``∝ w_k N(x_o | mu_o,k, S_oo,k)``, then the block ``~ N(mu_n,k + S_no,k
        S_oo,k^-1 (x_o - mu_o,k), S_nn,k - S_no,k S_oo,k^-1 S_on,k)`` (o: the 2C observed numbers, n: the
        block's). Two frames of context give a position and a velocity; a block drawn whole keeps its frames'
        correlations, where frames drawn one at a time would feed their noise back into the velocity
        (benchmarks/NOTES.md row 53: the speed then grows from frame to frame).

        With ``mean`` the continuation is the mode path instead of a draw: with learned ``dynamics`` (format 5)
        and paths of at least their context, their mode steps rolled forward one frame at a time
        (:meth:`models.objects.path_dynamics.PathDynamics.roll`; ``context`` is then theirs); otherwise the most
        probable component given the context, then its conditional mean (no noise, no generator). Either is
        kept in the box by clamping (a mean cannot be drawn again). One-frame paths repeat their last
        position then.

        ``context`` conditions on the last ``context`` frames instead of C (1 to F - 1, at most the paths'
        frames; blocks of F - ``context``): prediction uses more of the observed path, which averages out
        the positions' jitter.

        With ``dynamics_draws`` a draw comes from the dynamics too (where the mode path would), each step's
        component drawn by its weight (:meth:`models.objects.path_dynamics.PathDynamics.drawn_step`):
        predictions' draws; a sample's longer paths keep the mixture's blocks."""
        mixture = self.mixture
        device = paths.device
        paths = paths.double()
        if (mean or dynamics_draws) and self.dynamics is not None and paths.shape[1] >= self.dynamics.context:
            return self.dynamics.roll(paths, extra, self.bounds, sample=not mean, generator=generator)
        if self.frames == 1 and mean:  # nothing to condition on: the mode path stays where it is
            return torch.cat([paths, paths[:, -1:].expand(-1, extra, -1)], 1)
        if self.frames == 1:  # one-frame paths: nothing to condition on, every frame is a fresh draw
            def fresh(rows: Tensor) -> Tensor:
                return self._whole(int(rows.sum()), generator, device)  # (rows, 1, 2)

            every = torch.ones(paths.shape[0], dtype=torch.bool, device=device)
            return torch.cat([paths] + [self._within(fresh(every), fresh) for _ in range(extra)], 1)
        means = mixture.means.to(device, torch.float64)
        scales = mixture.scales.to(device, torch.float64)
        covariances = scales @ scales.transpose(1, 2) if mixture.covariance == "full" else torch.diag_embed(scales ** 2)
        context = self.context if context is None else int(context)
        if not 1 <= context <= min(self.frames - 1, paths.shape[1]):
            raise ValueError(f"a continuation's context must be 1 to {min(self.frames - 1, paths.shape[1])} frames "
                             f"(the fitted {self.frames} less one, at most the {paths.shape[1]} given), got {context}")
        observed = 2 * context
        s_oo = covariances[:, :observed, :observed]
        s_no = covariances[:, observed:, :observed]
        gain = torch.linalg.solve(s_oo, s_no.transpose(1, 2)).transpose(1, 2)  # S_no S_oo^-1, (K, 2(F-C), 2C)
        conditional = covariances[:, observed:, observed:] - gain @ s_no.transpose(1, 2)  # (K, 2(F-C), 2(F-C))
        eye = torch.eye(conditional.shape[1], dtype=torch.float64, device=device)
        conditional_scale = torch.linalg.cholesky(conditional + 1e-12 * eye)
        marginal = GaussianMixture(mixture.weights.to(device, torch.float64), means[:, :observed],
                                   torch.linalg.cholesky(s_oo), "full")
        while extra > 0:
            last = paths[:, -context:].flatten(1)  # (M, 2C)
            log_probs = _component_log_probs(last, marginal)  # (M, K)
            if mean:
                chosen = log_probs.argmax(1)  # (M,)
            else:
                chosen = torch.multinomial(torch.softmax(log_probs, 1), 1, generator=generator)[:, 0]  # (M,)
            offset = (gain[chosen] @ (last - means[chosen, :observed])[:, :, None])[:, :, 0]
            centre = means[chosen, observed:] + offset  # (M, 2(F - C))
            if mean:
                drawn = self._clamped(centre.view(centre.shape[0], -1, 2))  # (M, F - C, 2)
            else:
                block = _GaussianDraw(centre, conditional_scale[chosen], generator)
                drawn = self._within(block(torch.ones_like(chosen, dtype=torch.bool)), block)  # (M, F - C, 2)
            paths = torch.cat([paths, drawn[:, :extra]], 1)
            extra -= drawn.shape[1]
        return paths

    def state_dict(self) -> dict[str, Any]:
        state = {"mixture": self.mixture.state_dict(), "frames": self.frames, "slots": self.slots}
        if self.bounds is not None:
            state["bounds"] = self.bounds.cpu()
        if self.dynamics is not None:
            state["dynamics"] = self.dynamics.state_dict()
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> PathPrior:
        if not isinstance(state, Mapping) or not {"mixture", "frames", "slots"} <= set(state) <= {
                "mixture", "frames", "slots", "bounds", "dynamics"}:
            raise ValueError("a path prior needs the keys mixture, frames, slots (and bounds and dynamics, "
                             "optionally), no other")
        bounds = state.get("bounds")
        if bounds is not None:
            if not isinstance(bounds, Tensor) or tuple(bounds.shape) != (2, 2):
                raise ValueError("a path prior's bounds must be a (2, 2) tensor")
            _check_finite("bounds", bounds)
        dynamics = PathDynamics.from_state_dict(state["dynamics"]) if state.get("dynamics") is not None else None
        return cls(GaussianMixture.from_state_dict(state["mixture"]), int(state["frames"]), int(state["slots"]),
                   bounds, dynamics)


class FittedPrior:
    """The ex-post prior of one model (module docstring): a content mixture, and for the motion a per-object
    path prior, a per-frame motion mixture (a model without a learned motion prior) or neither.

    Args:
        content: mixture of one content unit's codes ``(Dc / content_slots)``.
        motion: mixture of the per-frame motion codes ``(Dm)``, or None.
        num_videos: how many training videos it was fitted to.
        content_slots: content units per video, drawn independently and concatenated (1: the whole code).
        paths: the objects' path prior, or None. With neither ``motion`` nor ``paths`` the model's own motion
            prior is kept.
        content_temperature: the content mixture's draws are ``mu_k + content_temperature * L_k eps``
            (module docstring); the motion's are drawn at temperature 1.
    """

    def __init__(self, content: GaussianMixture, motion: GaussianMixture | None = None, num_videos: int = 0,
                 content_slots: int = 1, paths: PathPrior | None = None, content_temperature: float = 1.0) -> None:
        if int(content_slots) < 1:
            raise ValueError(f"content_slots must be at least 1, got {content_slots}")
        if motion is not None and paths is not None:
            raise ValueError("a fitted prior draws its motion from a per-frame mixture or from a path prior, not both")
        self.content, self.motion, self.num_videos = content, motion, int(num_videos)
        self.content_slots = int(content_slots)
        self.paths = paths
        self.content_temperature = content_temperature  # checked by the property's setter

    @property
    def content_temperature(self) -> float:
        """The content draws' temperature; set it to draw a loaded prior hotter or colder without refitting
        (``ValueError`` for a negative or non-finite one)."""
        return self._content_temperature

    @content_temperature.setter
    def content_temperature(self, value: float) -> None:
        self._content_temperature = check_temperature(value)

    @property
    def content_dim(self) -> int:
        """Size of the content code it draws, ``(Dc)``: the units' sizes added up."""
        return self.content.dim * self.content_slots

    def draw(self, content: Tensor, motion: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Replace the prior draws ``content (N, Dc)`` and ``motion (N, T, Dm)`` by the fitted prior's (the
        motion only with a per-frame motion mixture; the paths are :meth:`draw_paths`).

        The model's own draws come first (same generator), so a model's sample stays a deterministic
        function of the generator's seed.
        """
        batch, frames, motion_dim = motion.shape
        units = self.content.sample(batch * self.content_slots, generator, device=content.device, dtype=content.dtype,
                                    temperature=self.content_temperature)
        content = units.view(batch, self.content_dim)  # (N, K * Dc / K): video n's units are rows nK .. nK + K - 1
        if self.motion is not None:
            motion = self.motion.sample(batch * frames, generator, device=motion.device, dtype=motion.dtype)
            motion = motion.view(batch, frames, motion_dim)
        return content, motion

    def draw_paths(self, num_samples: int, num_frames: int, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor | None:
        """``(N, T, K, 2)`` object positions from the path prior (:meth:`PathPrior.draw`), or None without one."""
        if self.paths is None:
            return None
        return self.paths.draw(num_samples, num_frames, generator, device, dtype)

    def describe(self) -> dict[str, str]:
        """What the prior is, in words: ``{"content": ..., "motion": ...}`` (motion None: the model's own)."""
        def words(mixture: GaussianMixture, unit: str = "") -> str:
            return (f"Gaussian mixture{unit}, {mixture.components} components, {mixture.covariance} covariance, "
                    f"fitted to the posterior means of {self.num_videos} training videos")
        unit = f" per object ({self.content_slots} drawn independently)" if self.content_slots > 1 else ""
        drawn = f"; drawn at temperature {self.content_temperature:g}" if self.content_temperature != 1 else ""
        if self.paths is not None:
            frames = self.paths.frames
            motion = (words(self.paths.mixture, f" per object path ({self.paths.slots} drawn independently, "
                                                f"{frames} frames)")
                      + (f"; frames past the {frames}th drawn {frames - self.paths.context} at a time "
                         f"from its conditional on the last {self.paths.context}" if frames > 1
                         else "; every further frame drawn afresh")
                      + ("; every frame kept in the box of the training positions" if self.paths.bounds is not None
                         else "")
                      + (f"; predictions' mode path rolled forward by a mixture density network "
                         f"({self.paths.dynamics.components} components) over the next step given the last "
                         f"{self.paths.dynamics.context} positions"
                         + (f", fitted to paths refined by {self.paths.dynamics.refine_steps} steps"
                            if self.paths.dynamics.refine_steps else "")
                         if self.paths.dynamics is not None else ""))
        else:
            motion = words(self.motion) if self.motion is not None else None
        return {"content": words(self.content, unit) + drawn, "motion": motion}

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loads with ``torch.load(weights_only=True)``)."""
        state: dict[str, Any] = {"format_version": FORMAT_VERSION, "num_videos": self.num_videos,
                                 "content_slots": self.content_slots, "content": self.content.state_dict(),
                                 "content_temperature": self.content_temperature}
        if self.motion is not None:
            state["motion"] = self.motion.state_dict()
        if self.paths is not None:
            state["paths"] = self.paths.state_dict()
        return state

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FittedPrior:
        """Rebuild a prior from :meth:`state_dict`; ``ValueError`` for a malformed one."""
        if not isinstance(state, Mapping) or "content" not in state:
            raise ValueError("a fitted prior needs a 'content' mixture")
        if state.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"unknown fitted prior format {state.get('format_version')!r}")
        parts = {}
        for key, read in (("content", GaussianMixture.from_state_dict), ("motion", GaussianMixture.from_state_dict),
                          ("paths", PathPrior.from_state_dict)):
            try:
                parts[key] = read(state[key]) if state.get(key) is not None else None
            except ValueError as error:
                raise ValueError(f"its {key} {'prior' if key == 'paths' else 'mixture'}: {error}") from None
        return cls(parts["content"], parts["motion"], int(state.get("num_videos", 0)),
                   int(state.get("content_slots", 1)), parts["paths"], state.get("content_temperature", 1.0))


def fit_prior(model: Any, videos: Iterable[Any], max_videos: int = DEFAULT_VIDEOS,
              components: int = DEFAULT_COMPONENTS, covariance: str = DEFAULT_COVARIANCE, steps: int = DEFAULT_STEPS,
              seed: int = 0, per_object: bool = True, object_paths: bool = True,
              path_components: int = PATH_COMPONENTS,
              content_temperature: float = DEFAULT_CONTENT_TEMPERATURE,
              path_videos: Iterable[Any] | None = None, dynamics: bool = True,
              dynamics_refine_steps: int = DYNAMICS_REFINE_STEPS,
              log: Callable[[str], None] | None = None) -> FittedPrior:
    """Fit the ex-post prior of a model to the posterior means of up to ``max_videos`` videos.

    Args:
        model: a model of the common API (``split``, ``has_motion_prior``).
        videos: batches of videos ``(B, T, C, H, W)``, or batch dicts with ``"video"`` (a data loader).
        max_videos: how many videos to encode at most; a per-frame motion mixture (a model without a learned
            motion prior) is fitted to as many of their frames, drawn at random (seeded).
        components, covariance, steps, seed: those of :func:`fit_gaussian_mixture`.
        per_object: fit one mixture to every object's code for a model with ``content_slots`` K > 1 (module
            docstring); False fits the whole content code as one unit (the rule of format version 1).
        object_paths: fit the path prior of a model with ``object_slots`` K > 0 (module docstring; full
            covariances); False keeps its learned motion prior (the rule of format versions 1 and 2).
        path_components: the path mixture's components.
        content_temperature: the content mixture's draws scale each component's spread by it (module
            docstring; 1 draws the fitted mixture itself, 0 its component means).
        path_videos: batches of longer training videos whose paths (up to ``max_videos`` videos) the path
            dynamics are fitted to (:mod:`models.objects.path_dynamics`); None fits them to the paths of ``videos``.
        dynamics: fit the path dynamics of a path prior (False: the mixture's mode path, format 4's rule).
        dynamics_refine_steps: the dynamics' paths are the positions refined by this many steps of the model's
            ``refine_positions`` (0, or a model without it: as encoded; the dynamics record which). With steps
            and no ``path_videos``, ``videos`` is read twice.
        log: called with one line per part (the encoding, each mixture) and its seconds, as it finishes.

    Returns:
        The :class:`FittedPrior` (not yet attached: ``model.set_fitted_prior(prior)``).
    """
    content_temperature = check_temperature(content_temperature)
    check_non_negative_int("dynamics_refine_steps", dynamics_refine_steps)
    started = time.perf_counter()
    if log is not None:
        log(f"ex-post prior: encoding up to {max_videos} videos")
    codes = prior_codes(model, videos, max_videos, seed, per_object, object_paths, log)

    def done(what: str) -> None:
        nonlocal started
        if log is not None:
            log(f"ex-post prior: {what} in {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()

    def fitted(points: Tensor, count: int, kind: str, part_seed: int, what: str) -> GaussianMixture:
        mixture = fit_gaussian_mixture(points, count, kind, steps, part_seed)
        done(f"{what}: {mixture.components} {kind} components on {points.shape[0]} codes of {points.shape[1]}")
        return mixture

    done(f"encoded {codes.videos} videos")
    content_mixture = fitted(codes.content, components, covariance, seed, "content mixture")
    motion_mixture = None
    if codes.motion is not None:
        motion_mixture = fitted(codes.motion, components, covariance, seed + 1, "per-frame motion mixture")
    path_prior = None
    if codes.paths is not None:
        positions = codes.paths.view(-1, 2)  # every (x, y) of every path
        bounds = torch.stack([positions.amin(0), positions.amax(0)])  # (2, 2): the box the objects stayed in
        path_prior = PathPrior(fitted(codes.paths, path_components, PATH_COVARIANCE, seed + 2, "path mixture"),
                               codes.paths.shape[1] // 2, codes.objects, bounds)
        if dynamics and path_prior.frames >= 3:
            paths = codes.paths
            refine = dynamics_refine_steps if hasattr(model, "refine_positions") else 0
            if path_videos is not None or refine:
                paths = prior_codes(model, videos if path_videos is None else path_videos, max_videos, seed,
                                    per_object, object_paths, log, refine_steps=refine).paths
                refined = f", refined by {refine} steps," if refine else ""
                done(f"encoded {paths.shape[0] // codes.objects} videos of {paths.shape[1] // 2} frames{refined} for "
                     "the path dynamics")
            path_prior.dynamics = PathDynamics.fit(paths.view(paths.shape[0], -1, 2), seed=seed + 3,
                                                   refine_steps=refine,
                                                   log=None if log is None else lambda line: log(f"ex-post prior: {line}"))
    return FittedPrior(content_mixture, motion_mixture, codes.videos, codes.slots, path_prior, content_temperature)


@dataclass
class PriorCodes:
    """The codes an ex-post prior is fitted to (:func:`prior_codes`), float64 on the CPU.

    Attributes:
        content: ``(N * K, Dc / K)``, one row per content unit (K: ``slots``).
        motion: ``(M, Dm)`` per-frame motion codes (M at most N, drawn at random), or None.
        paths: ``(N * objects, 2T)`` object paths ``x_0, y_0, x_1, ...``, or None.
        videos: N, the videos encoded.
        slots: content units per video.
        objects: objects placed per video (0: no paths).
    """

    content: Tensor
    motion: Tensor | None
    paths: Tensor | None
    videos: int
    slots: int
    objects: int


def prior_codes(model: Any, videos: Iterable[Any], max_videos: int = DEFAULT_VIDEOS, seed: int = 0,
                per_object: bool = True, object_paths: bool = True,
                log: Callable[[str], None] | None = None, refine_steps: int = 0) -> PriorCodes:
    """Encode up to ``max_videos`` videos and gather the codes :func:`fit_prior` fits (its arguments; ``log``
    gets a line on how far the encoding is every :data:`PROGRESS_SECONDS`). With ``refine_steps`` the objects'
    paths are their positions refined on each video's frames (the model's ``refine_positions``)."""
    parameter = next(model.parameters())
    said = time.perf_counter()
    objects = int(getattr(model, "object_slots", 0)) if object_paths else 0
    contents, motions, paths, seen = [], [], [], 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in videos:
                if seen >= max_videos:
                    break
                video = batch["video"] if isinstance(batch, Mapping) else batch
                video = video[: max_videos - seen].to(device=parameter.device, dtype=torch.float32)
                content, motion = model.split(video)  # (B, Dc), (B, T, Dm)
                contents.append(content.double().cpu())
                if objects:
                    if refine_steps:
                        motion = model.refine_positions(video, content, motion, refine_steps)
                    positions = model.object_positions(motion).double().cpu()  # (B, T, K, 2)
                    paths.append(positions.transpose(1, 2).flatten(0, 1).flatten(1))  # (B * K, 2T): x_0, y_0, x_1, ...
                elif not model.has_motion_prior:
                    motions.append(motion.double().flatten(0, 1).cpu())  # (B * T, Dm)
                seen += video.shape[0]
                if log is not None and time.perf_counter() - said > PROGRESS_SECONDS and seen < max_videos:
                    log(f"ex-post prior: encoded {seen} of {max_videos} videos")
                    said = time.perf_counter()
    finally:
        model.train(was_training)
    if seen < 2:
        raise ValueError(f"fitting a prior needs at least 2 videos, got {seen}")
    slots = int(getattr(model, "content_slots", 1)) if per_object else 1
    units = torch.cat(contents)  # (N, Dc)
    units = units.reshape(units.shape[0] * slots, units.shape[1] // slots)  # (N * K, Dc / K): one row per object
    frames = None
    if motions:
        frames = torch.cat(motions)  # (N * T, Dm): T times as many points as videos
        if frames.shape[0] > max_videos:  # as many frames as videos, drawn at random: the fit's cost stays that of
            keep = torch.randperm(frames.shape[0], generator=torch.Generator().manual_seed(seed))[:max_videos]
            frames = frames[keep.sort().values]  # the content's, and the mixture hardly changes
    return PriorCodes(units, frames, torch.cat(paths) if paths else None, seen, slots, objects)


def check_temperature(temperature: Any) -> float:
    """``temperature`` as a float; ``ValueError`` unless it is a finite number from 0 to
    :data:`MAX_CONTENT_TEMPERATURE` (1 draws the fitted mixture itself, 0 its component means)."""
    check_finite_number("the content temperature", temperature, minimum=0.0, maximum=MAX_CONTENT_TEMPERATURE)
    return float(temperature)
