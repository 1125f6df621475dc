"""Tests of the ex-post fitted prior (models/fitted_prior.py): EM, the sampling hook, the checkpoint round trip."""

from __future__ import annotations

import math
import os
import shutil

import pytest
import torch

from models import MODELS
from models.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    load_checkpoint,
    load_model,
    save_fitted_prior,
)
from models.fitted_prior import (
    DYNAMICS_REFINE_STEPS,
    FittedPrior,
    GaussianMixture,
    PathPrior,
    fit_gaussian_mixture,
    fit_prior,
)
from tests.evaluation_helpers import write_checkpoint
from tests.test_models import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


def two_clusters(count: int = 400, dim: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    centres = torch.zeros(2, dim, dtype=torch.float64)
    centres[1, 0] = 10.0
    chosen = torch.arange(count) % 2
    return centres[chosen] + 0.5 * torch.randn(count, dim, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_em_recovers_two_separated_clusters(covariance):
    mixture = fit_gaussian_mixture(two_clusters(), components=2, covariance=covariance, steps=20, seed=0)
    order = mixture.means[:, 0].argsort()
    assert torch.allclose(mixture.weights[order], torch.tensor([0.5, 0.5], dtype=torch.float64), atol=0.02)
    assert mixture.means[order][1, 0] == pytest.approx(10.0, abs=0.2)
    assert mixture.means[order][0].abs().max() < 0.2
    draws = mixture.sample(2000, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert ((draws[:, 0] > 5).double().mean() - 0.5).abs() < 0.05  # both modes, in proportion
    assert (draws[:, 1].std() - 0.5).abs() < 0.05  # each component's spread, not the data's


def test_em_raises_the_likelihood_and_is_seeded():
    points = two_clusters(200, 4)
    one_step = fit_gaussian_mixture(points, components=3, steps=1, seed=3)
    many = fit_gaussian_mixture(points, components=3, steps=15, seed=3)
    assert many.log_prob(points).mean() > one_step.log_prob(points).mean()
    again = fit_gaussian_mixture(points, components=3, steps=15, seed=3)
    assert torch.equal(many.means, again.means) and torch.equal(many.scales, again.scales)


def test_full_covariance_log_prob_matches_torch_distributions():
    mixture = fit_gaussian_mixture(two_clusters(100, 3), components=2, covariance="full", steps=5)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=mixture.weights),
        torch.distributions.MultivariateNormal(mixture.means, scale_tril=mixture.scales),
    )
    points = torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(mixture.log_prob(points), reference.log_prob(points))


def separated_mixture(components: int, dim: int, count: int = 1500, offset: float = 0.0):
    """Points of ``components`` well-separated Gaussians (centres ~20 apart, spreads 0.5-1.5, different along
    each axis) shifted by ``offset``, and each component's points' mean (what a maximum-likelihood fit finds)."""
    generator = torch.Generator().manual_seed(4)
    centres = offset + 20.0 * torch.randn(components, dim, generator=generator, dtype=torch.float64)
    spreads = 0.5 + torch.rand(components, dim, generator=generator, dtype=torch.float64)
    chosen = torch.arange(count) % components
    points = centres[chosen] + spreads[chosen] * torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return points, torch.stack([points[chosen == k].mean(0) for k in range(components)])


@pytest.mark.parametrize("covariance, dim", [("diag", 24), ("full", 6)])
@pytest.mark.parametrize("offset", [0.0, 1000.0])  # far from the origin: the EM works about the points' mean
def test_em_recovers_the_means_of_well_separated_components(covariance, dim, offset):
    points, centres = separated_mixture(5, dim, offset=offset)
    mixture = fit_gaussian_mixture(points, components=5, covariance=covariance, steps=30, seed=1)
    nearest = torch.cdist(centres, mixture.means).min(1)  # each component's closest fitted mean
    assert nearest.values.max() < 1e-3 and sorted(nearest.indices.tolist()) == list(range(5))
    assert torch.allclose(mixture.weights, torch.full((5,), 0.2, dtype=torch.float64), atol=0.01)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_an_em_step_is_the_textbook_update(covariance):
    # The EM never forms the (N, K, D) differences (matrix products instead): one step must still equal
    # r_nk ∝ w_k N(x_n | mu_k, Sigma_k), mu_k = sum_n r_nk x_n / sum_n r_nk, Sigma_k = sum_n r_nk (x_n - mu_k)
    # (x_n - mu_k)^T / sum_n r_nk + ridge, written out directly from a start of the same seed.
    points = separated_mixture(3, 4, count=300, offset=3.0)[0]
    start = fit_gaussian_mixture(points, components=3, covariance=covariance, steps=0, seed=2)
    stepped = fit_gaussian_mixture(points, components=3, covariance=covariance, steps=1, seed=2)
    covariances = (start.scales @ start.scales.transpose(1, 2) if covariance == "full"
                   else torch.diag_embed(start.scales ** 2))
    densities = torch.distributions.MultivariateNormal(start.means, covariance_matrix=covariances)
    responsibilities = torch.softmax(densities.log_prob(points[:, None]) + start.weights.log(), dim=1)  # (N, K)
    mass = responsibilities.sum(0)
    means = responsibilities.T @ points / mass[:, None]
    centred = points[:, None] - means[None]  # (N, K, D)
    expected = torch.einsum("nk,nkd,nke->kde", responsibilities, centred, centred) / mass[:, None, None]
    ridge = 1e-3 * float(points.var(0).mean()) + 1e-12
    expected = expected + ridge * torch.eye(4, dtype=torch.float64)
    got = (stepped.scales @ stepped.scales.transpose(1, 2) if covariance == "full"
           else torch.diag_embed(stepped.scales ** 2))
    if covariance == "diag":
        expected = torch.diag_embed(torch.diagonal(expected, dim1=1, dim2=2))
    assert torch.allclose(stepped.weights, mass / mass.sum(), atol=1e-9)
    assert torch.allclose(stepped.means, means, atol=1e-8) and torch.allclose(got, expected, atol=1e-8)


def test_diagonal_log_prob_matches_torch_distributions():
    mixture = fit_gaussian_mixture(two_clusters(100, 3), components=2, covariance="diag", steps=5)
    reference = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(probs=mixture.weights),
        torch.distributions.Independent(torch.distributions.Normal(mixture.means, mixture.scales), 1),
    )
    points = 3 * torch.randn(7, 3, dtype=torch.float64)
    assert torch.allclose(mixture.log_prob(points), reference.log_prob(points))


def test_fit_prior_logs_each_part_with_its_seconds(monkeypatch):
    import models.fitted_prior as fitted_prior_module

    monkeypatch.setattr(fitted_prior_module, "PROGRESS_SECONDS", 0)  # a line after every batch but the last
    lines = []
    fit_prior(tiny_model("baseline"), [videos()[:4], videos()[4:]], max_videos=8, components=2, steps=2,
              log=lines.append)
    assert lines[:2] == ["ex-post prior: encoding up to 8 videos", "ex-post prior: encoded 4 of 8 videos"]
    assert [line.split(": ")[1].split(" ")[0] for line in lines[2:]] == ["encoded", "content", "per-frame"]
    assert all(line.startswith("ex-post prior: ") and line.endswith(" s") for line in lines[2:])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="covariance must be one of"):
        fit_gaussian_mixture(torch.randn(10, 2), covariance="spherical")
    with pytest.raises(ValueError, match="non-finite"):
        fit_gaussian_mixture(torch.tensor([[0.0, math.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="mismatched"):
        GaussianMixture.from_state_dict({"weights": torch.ones(2), "means": torch.zeros(2, 3),
                                         "scales": torch.ones(3, 3), "covariance": "diag"})


def videos(count: int = 8, frames: int = 4) -> torch.Tensor:
    return torch.rand(count, frames, 1, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(MODELS))
def test_fitted_prior_drives_sample_and_sample_factors(name):
    model = tiny_model(name).eval()
    assert model.prior_description()["fitted"] is False and model.prior_description()["content"] == "N(0, I)"
    with torch.no_grad():
        plain = model.sample(3, 4, torch.Generator().manual_seed(5))
        prior = fit_prior(model, [videos()[:4], {"video": videos()[4:]}], components=2, steps=3)
        assert prior.num_videos == 8
        assert (prior.motion is None) == model.has_motion_prior  # only the Baseline's motion is refitted
        model.set_fitted_prior(prior)
        assert model.prior_description()["fitted"] is True
        content, motion = model.sample_factors(3, 4, torch.Generator().manual_seed(5))
        fitted = model.sample(3, 4, torch.Generator().manual_seed(5))
        assert torch.equal(fitted, model.combine(content, motion))
        assert not torch.equal(fitted, plain)
        # The content draws come from the mixture: within the span of the fitted codes, not N(0, I).
        units = content.double().reshape(-1, prior.content.dim)  # one row per object (object architectures)
        assert units.shape[0] == 3 * model.content_slots
        assert prior.content.log_prob(units).mean() > prior.content.log_prob(torch.randn_like(units)).mean()
        model.set_fitted_prior(None)
        assert torch.equal(model.sample(3, 4, torch.Generator().manual_seed(5)), plain)


def test_prior_of_other_sizes_is_refused():
    model = tiny_model("disentangled")
    prior = FittedPrior(fit_gaussian_mixture(torch.randn(20, 3), components=2, steps=1))
    with pytest.raises(ValueError, match="content size 3 does not match"):
        model.set_fitted_prior(prior)


def test_checkpoint_round_trip_is_exact(tmp_path):
    path = write_checkpoint(tmp_path / "run")
    model, _ = load_model(path)
    assert model.fitted_prior is None  # a checkpoint without one samples N(0, I)
    prior = fit_prior(model, [torch.rand(6, 6, 1, 32, 32, generator=torch.Generator().manual_seed(1))],
                      components=2, steps=3)
    model.set_fitted_prior(prior)
    save_fitted_prior(path, prior)
    assert not list(path.parent.glob(".*.tmp"))  # written atomically: no temporary file left
    # weights_only loading (load_checkpoint) reads it; the weights are untouched.
    stored = load_checkpoint(path)["fitted_prior"]
    reloaded, _ = load_model(path)
    for key in ("weights", "means", "scales"):
        assert torch.equal(stored["content"][key], prior.content.state_dict()[key])
        assert torch.equal(getattr(reloaded.fitted_prior.content, key), getattr(prior.content, key))
    assert reloaded.prior_description() == model.prior_description()
    with torch.no_grad():
        assert torch.equal(reloaded.sample(2, 6, torch.Generator().manual_seed(3)),
                           model.sample(2, 6, torch.Generator().manual_seed(3)))


def test_damaged_prior_in_checkpoint_is_one_clear_error(tmp_path):
    path = write_checkpoint(tmp_path / "run", fitted_prior={"format_version": 1, "content": {"weights": 1}})
    with pytest.raises(CheckpointError, match="damaged fitted prior"):
        load_model(path)


def test_a_run_fits_once_when_best_and_last_hold_the_same_weights(tmp_path, monkeypatch):
    from training import fit_prior as fit_prior_module

    best = write_checkpoint(tmp_path / "run")
    shutil.copy(best, best.parent / "last.pt")
    calls = []
    real = fit_prior_module.fit_prior
    monkeypatch.setattr(fit_prior_module, "fit_prior",
                        lambda *args, **kwargs: calls.append(args[0]) or real(*args, **kwargs))
    batches = [torch.rand(6, 6, 1, 32, 32, generator=torch.Generator().manual_seed(1))]
    written = fit_prior_module.fit_run_priors(best.parent, batches, components=2, steps=2)
    assert [path.name for path in written] == ["best_model.pt", "last.pt"] and len(calls) == 1
    stored = [load_checkpoint(path)["fitted_prior"]["content"]["means"] for path in written]
    assert torch.equal(stored[0], stored[1])


def test_a_per_frame_motion_mixture_is_fitted_to_as_many_frames_as_videos(monkeypatch):
    import models.fitted_prior as fitted_prior_module

    sizes = []
    real = fitted_prior_module.fit_gaussian_mixture
    monkeypatch.setattr(fitted_prior_module, "fit_gaussian_mixture",
                        lambda points, *args: sizes.append(points.shape[0]) or real(points, *args))
    model = tiny_model("baseline")
    prior = fit_prior(model, [torch.rand(6, 6, 1, 32, 32, generator=torch.Generator().manual_seed(1))],
                      max_videos=5, components=2, steps=2)
    assert prior.motion is not None and prior.num_videos == 5
    assert sizes == [5, 5]  # 5 content codes, and 5 of the 30 frames' motion codes


class _TwoObjectCodes(torch.nn.Module):
    """A stand-in model whose content is two per-object codes of 2 numbers: in every video one object's code
    sits near (+5, 0) and the other's near (-5, 0), so the whole code only ever pairs + with -."""

    has_motion_prior = True
    content_slots = 2

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def split(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = video.shape[0]
        generator = torch.Generator().manual_seed(count)
        sign = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
        first = torch.stack([5 * sign, torch.zeros(count)], dim=1)
        content = torch.cat([first, -first], dim=1) + 0.1 * torch.randn(count, 4, generator=generator)
        return content, torch.zeros(count, video.shape[1], 1)


def test_per_object_prior_draws_the_objects_independently():
    model, batches = _TwoObjectCodes(), [torch.zeros(200, 2, 1, 4, 4)]
    prior = fit_prior(model, batches, components=2, covariance="diag", steps=10)
    assert prior.content_slots == 2 and prior.content.dim == 2 and prior.content_dim == 4
    assert "per object (2 drawn independently)" in prior.describe()["content"]
    content, _ = prior.draw(torch.zeros(4000, 4), torch.zeros(4000, 3, 1), torch.Generator().manual_seed(0))
    same_side = (torch.sign(content[:, 0]) == torch.sign(content[:, 2])).double().mean()
    assert 0.45 < same_side < 0.55  # (+, +) and (-, -) as often as chance, though never in the data
    whole = fit_prior(model, batches, components=2, covariance="full", steps=10, per_object=False)
    assert whole.content_slots == 1 and whole.content.dim == 4
    content, _ = whole.draw(torch.zeros(4000, 4), torch.zeros(4000, 3, 1), torch.Generator().manual_seed(0))
    assert (torch.sign(content[:, 0]) == torch.sign(content[:, 2])).double().mean() < 0.01  # the pairing kept


@pytest.mark.parametrize("architecture", ["slots", "keypoints", "pooled"])
def test_object_architectures_fit_one_mixture_per_object(architecture):
    model = tiny_model(f"disentangled:{architecture}").eval()
    expected = model.config.slots if architecture != "pooled" else 1
    assert model.content_slots == expected
    with torch.no_grad():
        prior = fit_prior(model, [videos()], components=2, steps=2)
        assert prior.content_slots == expected and prior.content.dim == model.content_dim // expected
        model.set_fitted_prior(prior)
        assert model.sample_factors(3, 4, torch.Generator().manual_seed(0))[0].shape == (3, model.content_dim)
    state = prior.state_dict()
    assert FittedPrior.from_state_dict(state).content_slots == expected
    # A prior written before format 2 (no content_slots) still loads, as one content unit.
    old = {**state, "format_version": 1}
    old.pop("content_slots")
    assert FittedPrior.from_state_dict(old).content_slots == 1


def test_fit_prior_command_refits_a_run_folder(tmp_path, capsys):
    from training.fit_prior import main

    best = write_checkpoint(tmp_path / "run")
    shutil.copy(best, best.parent / "last.pt")
    assert main(["--checkpoint", str(best.parent), "--components", "2", "--path-components", "3", "--steps", "2",
                 "--videos", "8", "--device", "cpu"]) == 0
    model, _ = load_model(best)
    for name in ("best_model.pt", "last.pt"):
        stored = load_checkpoint(best.parent / name)["fitted_prior"]
        assert stored["content_slots"] == model.content_slots and stored["num_videos"] == 8
        assert stored["paths"]["slots"] == model.object_slots  # the objects' paths, by default
        assert stored["content"]["means"].shape[0] == 2 and stored["paths"]["mixture"]["means"].shape[0] == 3
        assert stored["paths"]["dynamics"]["refine_steps"] == DYNAMICS_REFINE_STEPS  # fitted to refined paths
    printed = capsys.readouterr().out
    assert "per object (" in printed and "motion prior: Gaussian mixture per object path" in printed
    assert f"fitted to paths refined by {DYNAMICS_REFINE_STEPS} steps" in printed
    assert main(["--checkpoint", str(best), "--components", "2", "--path-components", "3", "--steps", "2",
                 "--videos", "8", "--device", "cpu", "--dynamics-refine-steps", "0"]) == 0
    assert load_checkpoint(best)["fitted_prior"]["paths"]["dynamics"]["refine_steps"] == 0
    assert main(["--checkpoint", str(best.parent), "--whole-content", "--learned-motion", "--components", "2",
                 "--steps", "2", "--videos", "8", "--device", "cpu"]) == 0
    stored = load_checkpoint(best)["fitted_prior"]
    assert stored["content_slots"] == 1 and "paths" not in stored and "motion" not in stored
    assert "ex-post prior: content mixture: 2 diag components" in capsys.readouterr().err  # progress, on stderr
    (tmp_path / "empty").mkdir()
    assert main(["--checkpoint", str(tmp_path / "empty"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "holds neither best_model.pt nor last.pt" in error and len(error.strip().splitlines()) == 1


class _TwoObjectPaths(torch.nn.Module):
    """A stand-in model whose motion code is two objects' positions, ``(B, T, 2 * 2)``: in every video both
    move in straight lines at 0.1 a frame along x, one to the right and the other to the left, from random
    starts, so a whole video only ever pairs opposite directions."""

    has_motion_prior = True
    content_slots = 1
    object_slots = 2

    def __init__(self, frames: int = 5) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.frames = frames

    def split(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = video.shape[0]
        generator = torch.Generator().manual_seed(count)
        sign = torch.where(torch.rand(count, generator=generator) < 0.5, -1.0, 1.0)
        starts = torch.rand(count, 2, 2, generator=generator) - 0.5  # (B, K, 2)
        velocity = torch.stack([sign, -sign], 1)[:, :, None] * torch.tensor([0.1, 0.0])  # (B, K, 2)
        time = torch.arange(self.frames, dtype=torch.float32)[None, :, None, None]
        positions = starts[:, None] + time * velocity[:, None]  # (B, T, K, 2)
        return torch.randn(count, 3, generator=generator), positions.flatten(2)

    def object_positions(self, motion: torch.Tensor) -> torch.Tensor:
        return motion.reshape(*motion.shape[:2], 2, 2)


def test_path_prior_draws_each_objects_path_whole_and_the_objects_independently():
    model = _TwoObjectPaths()
    prior = fit_prior(model, [torch.zeros(400, 5, 1, 4, 4)], components=4, steps=20)
    assert prior.motion is None and prior.paths is not None
    assert (prior.paths.frames, prior.paths.slots, prior.paths.mixture.covariance) == (5, 2, "full")
    assert "per object path (2 drawn independently, 5 frames)" in prior.describe()["motion"]
    paths = prior.draw_paths(2000, 5, torch.Generator().manual_seed(0), dtype=torch.float64)  # (N, T, K, 2)
    assert paths.shape == (2000, 5, 2, 2)
    steps = paths[:, 1:, :, 0] - paths[:, :-1, :, 0]  # (N, T - 1, K): x steps
    # Each path is drawn whole (full covariance): a straight line at 0.1 a frame, up to the fit's ridge (a
    # standard deviation of about 0.01 per number), not frames drawn apart (steps would spread by about 0.4).
    assert (steps.abs().mean() - 0.1).abs() < 0.005 and steps.std(dim=1).quantile(0.99) < 0.04
    same_direction = (torch.sign(steps[:, 0, 0]) == torch.sign(steps[:, 0, 1])).double().mean()
    assert 0.45 < same_direction < 0.55  # the two objects independently: pairs never seen in the data
    kept = fit_prior(model, [torch.zeros(400, 5, 1, 4, 4)], components=4, steps=2, object_paths=False)
    assert kept.paths is None and kept.motion is None  # the model's learned motion prior stays


def _conditional_mean_from_precision(mean, covariance, observed, split):
    """Reference: the conditional mean of a Gaussian's last numbers given the first ``split`` ones, from
    the precision matrix: mu_n - P_nn^-1 P_no (x_o - mu_o)."""
    precision = torch.linalg.inv(covariance)
    p_nn, p_no = precision[split:, split:], precision[split:, :split]
    return mean[split:] - torch.linalg.solve(p_nn, p_no @ (observed - mean[:split]))


def test_paths_past_the_fitted_frames_follow_the_conditional_of_the_mixture():
    generator = torch.Generator().manual_seed(0)
    frames = 4
    factor = torch.randn(2 * frames, 2 * frames, generator=generator, dtype=torch.float64)
    covariance = factor @ factor.T / (2 * frames) + 0.1 * torch.eye(2 * frames, dtype=torch.float64)
    mean = torch.randn(2 * frames, generator=generator, dtype=torch.float64)
    mixture = GaussianMixture(torch.ones(1, dtype=torch.float64), mean[None],
                              torch.linalg.cholesky(covariance)[None], "full")
    prior = PathPrior(mixture, frames, slots=1)
    start = torch.randn(1, 2, 2, generator=generator, dtype=torch.float64)  # the context: the last 2 frames
    # Three more frames: a block of F - 2 = 2 drawn jointly given the start, then one more given the block.
    extended = prior.continue_paths(start.expand(20000, -1, -1), 3, torch.Generator().manual_seed(1))
    assert extended.shape == (20000, 5, 2) and torch.equal(extended[:, :2], start.expand(20000, -1, -1))
    block = extended[:, 2:4].flatten(1)  # (N, 4)
    expected = _conditional_mean_from_precision(mean, covariance, start.flatten(), 4)
    assert torch.allclose(block.mean(0), expected, atol=0.03)
    # the block's own covariance is the conditional one (its frames drawn together, not one at a time)
    precision = torch.linalg.inv(covariance)
    centred = block - block.mean(0)
    assert torch.allclose(centred.T @ centred / len(block), torch.linalg.inv(precision[4:, 4:]), atol=0.03)
    # the frame after the block: the conditional of the mixture's frames 2-3 given frames 0-1 = the block
    after = _conditional_mean_from_precision(mean, covariance, block[0], 4)[:2]
    many = prior.continue_paths(extended[:1, 2:4].expand(20000, -1, -1), 1, torch.Generator().manual_seed(3))
    assert torch.allclose(many[:, -1].mean(0), after, atol=0.03)
    # Straight lines stay straight far past the fitted frames.
    lines = _TwoObjectPaths(frames=4)
    line_prior = fit_prior(lines, [torch.zeros(400, 4, 1, 4, 4)], components=4, steps=20)
    line_prior.paths.bounds = None  # no box: the lines run on past where the fitted ones stayed
    long = line_prior.draw_paths(200, 12, torch.Generator().manual_seed(2), dtype=torch.float64)
    steps = long[:, 1:, :, 0] - long[:, :-1, :, 0]  # (N, 11, K)
    assert (steps.abs().mean() - 0.1).abs() < 0.005 and steps.std(dim=1).quantile(0.99) < 0.04
    assert (torch.sign(steps) == torch.sign(steps[:, :1])).all()  # no path turns back
    short = line_prior.draw_paths(5, 2, torch.Generator().manual_seed(2))
    assert short.shape == (5, 2, 2, 2)


@pytest.mark.parametrize("architecture", ["slots", "keypoints"])
def test_object_architectures_place_the_drawn_paths(architecture):
    model = tiny_model(f"disentangled:{architecture}").eval()
    assert model.object_slots == model.config.slots
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if architecture == "slots":  # a readout that is not the identity: the inverse must be exact anyway
            model.pose_readout.weight.add_(0.3 * torch.randn(model.pose_readout.weight.shape, generator=generator))
        motion = torch.randn(3, 4, model.motion_dim, generator=generator)
        wanted = torch.rand(3, 4, model.object_slots, 2, generator=generator) * 2 - 1
        placed = model.with_object_positions(motion, wanted)
        assert torch.allclose(model.object_positions(placed), wanted, atol=1e-5)
        prior = fit_prior(model, [videos()], components=2, steps=2)
        assert prior.paths is not None and prior.paths.slots == model.object_slots
        # A path prior that allows one path only: every sampled object goes exactly there.
        path = torch.linspace(-0.5, 0.5, 2 * prior.paths.frames, dtype=torch.float64)
        one_path = GaussianMixture(torch.ones(1, dtype=torch.float64), path[None],
                                   torch.full((1, path.numel()), 1e-6, dtype=torch.float64), "diag")
        prior.paths = PathPrior(one_path, prior.paths.frames, prior.paths.slots)
        model.set_fitted_prior(prior)
        _, sampled = model.sample_factors(2, prior.paths.frames, torch.Generator().manual_seed(1))
        positions = model.object_positions(sampled)  # (2, T, K, 2)
        assert torch.allclose(positions, path.view(-1, 1, 2).float().expand_as(positions), atol=1e-4)
    state = prior.state_dict()
    again = FittedPrior.from_state_dict(state)
    assert again.paths.frames == prior.paths.frames and torch.equal(again.paths.mixture.means, path[None])
    older = {key: value for key, value in state.items() if key != "paths"} | {"format_version": 2}
    assert FittedPrior.from_state_dict(older).paths is None  # a format-2 prior keeps the learned motion prior


def test_a_prior_for_other_objects_is_refused():
    model = tiny_model("disentangled:pooled")
    content = fit_gaussian_mixture(torch.randn(20, model.content_dim // 2), components=2, steps=1)
    with pytest.raises(ValueError, match="draws 2 content codes per video"):
        model.set_fitted_prior(FittedPrior(content, content_slots=2))
    whole = fit_gaussian_mixture(torch.randn(20, model.content_dim), components=2, steps=1)
    paths = PathPrior(fit_gaussian_mixture(torch.randn(20, 8), components=2, steps=1), frames=4, slots=2)
    with pytest.raises(ValueError, match="paths of 2 objects, but the model's motion code places 0"):
        model.set_fitted_prior(FittedPrior(whole, paths=paths))
    with pytest.raises(ValueError, match="not both"):
        FittedPrior(whole, motion=whole, paths=paths)
    with pytest.raises(ValueError, match="needs a mixture of 6 dimensions"):
        PathPrior(paths.mixture, frames=3, slots=2)


def test_temperature_scales_each_components_spread_and_zero_draws_the_means():
    # Two components far apart with known spreads: a draw at temperature t is its component's mean plus t times
    # the component's noise. Reference: the draws at t = 1 from the same generator, shrunk towards their means.
    means = torch.tensor([[-10.0, 0.0], [10.0, 5.0]], dtype=torch.float64)
    diag = GaussianMixture(torch.tensor([0.3, 0.7], dtype=torch.float64), means,
                           torch.tensor([[1.0, 2.0], [0.5, 3.0]], dtype=torch.float64), "diag")
    cholesky = torch.tensor([[[1.0, 0.0], [0.8, 0.6]], [[2.0, 0.0], [-1.0, 1.0]]], dtype=torch.float64)
    full = GaussianMixture(diag.weights, means, cholesky, "full")
    for mixture in (diag, full):
        hot = mixture.sample(4000, torch.Generator().manual_seed(5), dtype=torch.float64)
        chosen = (hot[:, 0] > 0).long()  # the components are 20 apart: the side tells which was drawn
        for temperature in (0.0, 0.4, 1.0):
            cold = mixture.sample(4000, torch.Generator().manual_seed(5), dtype=torch.float64, temperature=temperature)
            expected = means[chosen] + temperature * (hot - means[chosen])
            assert torch.allclose(cold, expected, atol=1e-9)
        # and as a distribution: each component's covariance is t^2 Sigma_k
        cold = mixture.sample(4000, torch.Generator().manual_seed(6), dtype=torch.float64, temperature=0.5)
        second = cold[cold[:, 0] > 0] - means[1]
        sigma = mixture.scales[1] @ mixture.scales[1].T if mixture.covariance == "full" else torch.diag(
            mixture.scales[1] ** 2)
        assert torch.allclose(second.T @ second / len(second), 0.25 * sigma, atol=0.15)
    assert torch.equal(diag.sample(50, torch.Generator().manual_seed(1), temperature=0.0).unique(dim=0),
                       means.float())  # temperature 0: only the two means


def test_the_prior_draws_content_at_its_temperature_and_motion_at_one():
    model = tiny_model("disentangled", architecture="slots")
    batches = [torch.rand(8, 4, 1, 32, 32, generator=torch.Generator().manual_seed(2))]
    warm = fit_prior(model, batches, components=2, path_components=2, steps=3, content_temperature=1.0)
    cold = fit_prior(model, batches, components=2, path_components=2, steps=3, content_temperature=0.0)
    assert torch.equal(warm.content.means, cold.content.means)  # the temperature does not change the fit
    assert cold.describe()["content"].endswith("drawn at temperature 0") and "temperature" not in warm.describe()[
        "content"]
    with torch.no_grad():
        model.set_fitted_prior(cold)
        content, motion = model.sample_factors(64, 4, torch.Generator().manual_seed(0))
        units = content.reshape(64 * model.content_slots, -1).double()
        # every object's code is one of the content mixture's means
        assert torch.cdist(units, cold.content.means).min(dim=1).values.max() < 1e-5
        model.set_fitted_prior(warm)
        _, warm_motion = model.sample_factors(64, 4, torch.Generator().manual_seed(0))
    assert torch.equal(motion, warm_motion)  # the paths are drawn at temperature 1 either way


def test_temperature_survives_the_checkpoint_and_older_priors_drew_at_one(tmp_path):
    path = write_checkpoint(tmp_path / "run")
    model, _ = load_model(path)
    batches = [torch.rand(6, 6, 1, 32, 32, generator=torch.Generator().manual_seed(1))]
    save_fitted_prior(path, fit_prior(model, batches, components=2, steps=2, content_temperature=0.25))
    stored = load_checkpoint(path)["fitted_prior"]
    assert stored["content_temperature"] == 0.25 and load_model(path)[0].fitted_prior.content_temperature == 0.25
    older = {key: value for key, value in stored.items() if key != "content_temperature"} | {"format_version": 3}
    assert FittedPrior.from_state_dict(older).content_temperature == 1.0
    for bad in (-0.1, float("nan"), "warm"):
        with pytest.raises(ValueError, match="content temperature must be"):
            fit_prior(model, batches, components=2, steps=1, content_temperature=bad)
    with pytest.raises(ValueError, match="content temperature must be"):
        FittedPrior.from_state_dict(stored | {"content_temperature": -1.0})
    reloaded = load_model(path)[0].fitted_prior
    reloaded.content_temperature = 0.0  # a loaded prior drawn colder, without refitting
    assert reloaded.state_dict()["content_temperature"] == 0.0
    with pytest.raises(ValueError, match="content temperature must be"):
        reloaded.content_temperature = -2


def test_fit_prior_command_stores_the_temperature(tmp_path, capsys):
    from training.fit_prior import main, stale_prior

    best = write_checkpoint(tmp_path / "run")
    assert main(["--checkpoint", str(best), "--components", "2", "--path-components", "2", "--steps", "2",
                 "--videos", "8", "--temperature", "0.7", "--device", "cpu"]) == 0
    assert load_checkpoint(best)["fitted_prior"]["content_temperature"] == 0.7
    assert "drawn at temperature 0.7" in capsys.readouterr().out
    assert stale_prior(best) is None
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(best), "--temperature", "-1"])
    assert "must be a finite number >= 0" in capsys.readouterr().err


def test_path_prior_keeps_every_frame_in_the_box_of_the_training_positions():
    model = _TwoObjectPaths(frames=4)
    prior = fit_prior(model, [torch.zeros(400, 4, 1, 4, 4)], components=4, steps=20)
    positions = model.split(torch.zeros(400, 4, 1, 4, 4))[1].reshape(-1, 2).double()  # every (x, y) fitted
    assert torch.equal(prior.paths.bounds, torch.stack([positions.amin(0), positions.amax(0)]))
    low, high = prior.paths.bounds
    # Unboxed, most of the straight lines leave the box by frame 12 (and some within the fitted 4 frames).
    unboxed = PathPrior(prior.paths.mixture, 4, 2).draw(2000, 12, torch.Generator().manual_seed(3), dtype=torch.float64)
    assert ((unboxed < low) | (unboxed > high)).flatten(1).any(1).double().mean() > 0.5
    boxed = prior.draw_paths(2000, 12, torch.Generator().manual_seed(3), dtype=torch.float64)  # (N, T, K, 2)
    assert bool(((boxed >= low) & (boxed <= high)).all())
    assert "every frame kept in the box of the training positions" in prior.describe()["motion"]
    # Inside the box the fitted frames are the mixture's own draws restricted to it (redrawn, not clamped):
    # their mean equals that of the unboxed draws that stay inside, and none sits on the box's edge.
    inside = unboxed[:, :4][~((unboxed[:, :4] < low) | (unboxed[:, :4] > high)).flatten(1).any(1)]
    assert torch.allclose(boxed[:, :4].mean((0, 2)), inside.mean((0, 2)), atol=0.02)
    assert not bool(((boxed[:, :4] == low) | (boxed[:, :4] == high)).any())
    # Past the fitted frames a line heading out can only go on straight (its conditional has no mass inside):
    # after the redraws it stops at the edge, where it is clamped.
    assert bool(((boxed[:, 4:] == low) | (boxed[:, 4:] == high)).any())
    # A box the mixture can hardly reach: after the redraws, what is left is clamped into it.
    narrow = PathPrior(prior.paths.mixture, 4, 2, torch.tensor([[0.0, 0.0], [1e-3, 1e-3]], dtype=torch.float64))
    squeezed = narrow.draw(20, 6, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert bool(((squeezed >= 0) & (squeezed <= 1e-3)).all())
    # The box travels with the prior; a prior of format 3 has none.
    state = prior.state_dict()
    assert torch.equal(FittedPrior.from_state_dict(state).paths.bounds, prior.paths.bounds)
    older = state | {"format_version": 3, "paths": {key: value for key, value in state["paths"].items()
                                                    if key != "bounds"}}
    assert FittedPrior.from_state_dict(older).paths.bounds is None
    with pytest.raises(ValueError, match="bounds must be a"):
        PathPrior(prior.paths.mixture, 4, 2, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


# ----------------------------------------------------------------------------------------------------
# Issue 33: the prior is part of the model


def _fit_options() -> list[str]:
    return ["--components", "2", "--path-components", "2", "--steps", "2", "--videos", "8", "--device", "cpu"]


def test_a_prior_is_only_stored_beside_the_weights_it_was_fitted_to(tmp_path, monkeypatch):
    """Item 1: weights written while the prior is fitted (a training run on the same file) are not given
    the prior of the earlier weights."""
    from models.checkpoint import weights_sha256
    from training import fit_prior as fit_prior_module

    path = write_checkpoint(tmp_path / "run")
    real = fit_prior_module.fit_prior

    def training_writes_meanwhile(model, *args, **kwargs):
        prior = real(model, *args, **kwargs)
        checkpoint = load_checkpoint(path)
        checkpoint["model_state_dict"] = {key: value + 1 if value.is_floating_point() else value
                                          for key, value in checkpoint["model_state_dict"].items()}
        atomic_torch_save(checkpoint, path)
        return prior

    monkeypatch.setattr(fit_prior_module, "fit_prior", training_writes_meanwhile)
    batches = [torch.rand(6, 6, 1, 32, 32, generator=torch.Generator().manual_seed(1))]
    with pytest.raises(CheckpointError, match="other weights than those its prior was fitted to"):
        fit_prior_module.fit_checkpoint_prior(path, batches, components=2, steps=2)
    assert "fitted_prior" not in load_checkpoint(path)
    # the weights hash is of the weights alone: a stored prior does not change it
    before = weights_sha256(load_checkpoint(path)["model_state_dict"])
    monkeypatch.setattr(fit_prior_module, "fit_prior", real)
    fit_prior_module.fit_checkpoint_prior(path, batches, components=2, steps=2)
    assert weights_sha256(load_checkpoint(path)["model_state_dict"]) == before


def test_fit_prior_takes_the_run_folders_lock(tmp_path, capsys):
    """Item 1: a second process on the run folder (training, the demo, another fit) is refused in one line
    naming the holder's pid, and nothing is written."""
    from training.fit_prior import main
    from training.run_folder.lock import RunLock

    best = write_checkpoint(tmp_path / "run")
    before = best.read_bytes()
    with RunLock(best.parent):
        for target in (best, best.parent):
            assert main(["--checkpoint", str(target), *_fit_options()]) == 2
            error = capsys.readouterr().err
            assert error.count("\n") == 1 and f"pid {os.getpid()}" in error, error
    assert best.read_bytes() == before
    assert main(["--checkpoint", str(best), *_fit_options()]) == 0  # the lock released, it runs


def test_a_non_finite_stored_prior_is_one_line_at_load_naming_the_file_and_the_fix(tmp_path, capsys):
    """Item 5: NaN in a stored prior's weights, means, scales or paths' bounds is refused when the checkpoint
    is loaded; the fix the message names (refitting) works."""
    from training.fit_prior import main

    path = write_checkpoint(tmp_path / "run")
    assert main(["--checkpoint", str(path), *_fit_options()]) == 0
    good = load_checkpoint(path)
    for part, key in (("content", "weights"), ("content", "means"), ("content", "scales"), ("paths", "bounds")):
        checkpoint = {**good, "fitted_prior": {**good["fitted_prior"]}}
        stored = checkpoint["fitted_prior"]
        if part == "paths":
            stored["paths"] = {**stored["paths"], "bounds": stored["paths"]["bounds"] * math.nan}
        else:
            stored[part] = {**stored[part], key: stored[part][key].clone()}
            stored[part][key].view(-1)[0] = math.nan
        atomic_torch_save(checkpoint, path)
        with pytest.raises(CheckpointError) as raised:
            load_model(path)
        message = str(raised.value)
        assert str(path) in message and "NaN or infinite" in message and part in message, message
        assert f"python -m training.fit_prior --checkpoint {path}" in message and "\n" not in message
    assert main(["--checkpoint", str(path), *_fit_options()]) == 0  # the fix it names
    assert load_model(path)[0].fitted_prior is not None
    capsys.readouterr()


def test_fit_prior_checks_every_file_before_writing_any(tmp_path, capsys):
    """Item 10: a good best_model.pt beside a corrupt last.pt: exit 2 naming last.pt, and best_model.pt is
    untouched (not half done and reported as failed)."""
    from training.fit_prior import main

    best = write_checkpoint(tmp_path / "run")
    (best.parent / "last.pt").write_bytes(best.read_bytes()[:1000])
    before = best.read_bytes()
    assert main(["--checkpoint", str(best.parent), *_fit_options()]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "last.pt" in error
    assert best.read_bytes() == before


def test_fit_prior_on_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    """Item 11."""
    from training import fit_prior as fit_prior_module

    best = write_checkpoint(tmp_path / "run")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_prior_module, "fit_prior", interrupted)
    assert fit_prior_module.main(["--checkpoint", str(best), *_fit_options()]) == 130
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Traceback" not in error and "interrupted" in error
    assert "fitted_prior" not in load_checkpoint(best)


def test_the_content_temperature_has_a_documented_range_everywhere(tmp_path, capsys):
    """Item 4: a temperature past MAX_CONTENT_TEMPERATURE (1e30 gave all-NaN samples) is refused by the
    constructor, the setter, the command line and a stored prior, each in one line."""
    from models.fitted_prior import MAX_CONTENT_TEMPERATURE
    from training.fit_prior import main

    path = write_checkpoint(tmp_path / "run")
    assert main(["--checkpoint", str(path), *_fit_options(), "--temperature", str(MAX_CONTENT_TEMPERATURE)]) == 0
    prior = load_model(path)[0].fitted_prior
    for bad in (MAX_CONTENT_TEMPERATURE + 0.5, 1e30, 1e308):
        with pytest.raises(ValueError, match="content temperature must be a finite number from 0 to 4"):
            FittedPrior(prior.content, content_temperature=bad)
        with pytest.raises(ValueError, match="content temperature must be a finite number from 0 to 4"):
            prior.content_temperature = bad
        with pytest.raises(SystemExit):
            main(["--checkpoint", str(path), "--temperature", str(bad)])
        assert "must be a finite number >= 0 and <= 4" in capsys.readouterr().err
    checkpoint = load_checkpoint(path)
    checkpoint["fitted_prior"]["content_temperature"] = 1e30  # written by a version without the bound
    atomic_torch_save(checkpoint, path)
    with pytest.raises(CheckpointError, match="content temperature must be .* fit it again with"):
        load_model(path)
