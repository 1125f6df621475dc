"""The path dynamics (``models.objects.path_dynamics``): the learned next step that rolls a prediction's mode path."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from data import DataConfig, MovingMNIST, MovingMNISTConfig, data_loaders
from models.fitted_prior import READABLE_VERSIONS, FittedPrior, PathPrior, fit_prior
from models.objects.path_dynamics import DRAW_TEMPERATURE, PathDynamics
from tests.test_fitted_prior import _TwoObjectPaths

BOX = 0.5  # the synthetic paths bounce inside [-BOX, BOX] on both axes


def bouncing_paths(count: int, frames: int, seed: int = 0, jitter: float = 0.004) -> torch.Tensor:
    """``(count, frames, 2)`` points moving in straight lines at 0.06-0.14 a frame and reflecting off the
    walls of ``[-BOX, BOX]^2`` (as Moving MNIST's digits do), each position jittered a little."""
    generator = torch.Generator().manual_seed(seed)
    start = (torch.rand(count, 2, generator=generator) * 2 - 1) * BOX
    angle = torch.rand(count, generator=generator) * 2 * torch.pi
    speed = 0.06 + 0.08 * torch.rand(count, generator=generator)
    velocity = torch.stack([angle.cos(), angle.sin()], 1) * speed[:, None]
    time = torch.arange(frames, dtype=torch.float32)[None, :, None]
    unfolded = start[:, None] + BOX + time * velocity[:, None]  # position from the box's corner, walls unfolded
    folded = torch.remainder(unfolded, 4 * BOX)
    positions = torch.where(folded > 2 * BOX, 4 * BOX - folded, folded) - BOX
    return positions + jitter * torch.randn(positions.shape, generator=generator)


@pytest.fixture(scope="module")
def fitted() -> PathDynamics:
    return PathDynamics.fit(bouncing_paths(1500, 20), context=6, steps=1500, components=4, hidden=64)


def test_the_dynamics_learn_bounces_and_keep_the_speed(fitted):
    truth = bouncing_paths(400, 30, seed=1, jitter=0.0)
    observed = truth[:, :10] + 0.004 * torch.randn(400, 10, 2, generator=torch.Generator().manual_seed(2))
    rolled = fitted.roll(observed, 20, bounds=torch.tensor([[-BOX, -BOX], [BOX, BOX]]))
    assert rolled.shape == (400, 30, 2) and torch.equal(rolled[:, :10], observed)
    error = (rolled[:, 10:20] - truth[:, 10:20]).norm(dim=-1).mean()
    velocity = (observed[:, -1] - observed[:, -6]) / 5  # a constant velocity that does not bounce
    straight = observed[:, -1:] + torch.arange(1, 11)[None, :, None] * velocity[:, None]
    assert error < 0.35 * (straight - truth[:, 10:20]).norm(dim=-1).mean(), "no better than a straight line"
    speeds = (rolled[:, 11:] - rolled[:, 10:-1]).norm(dim=-1).mean(0)  # every rolled frame's mean speed
    real = (truth[:, 1:] - truth[:, :-1]).norm(dim=-1).mean()
    assert speeds.min() > 0.8 * real, "the mode path slows down"
    assert bool(((rolled[:, 10:] >= -BOX) & (rolled[:, 10:] <= BOX)).all())  # the rolled frames kept in bounds
    # the mixture's mean step, rolled the same way, averages bounces it cannot tell apart and slows down more
    track = observed
    with torch.no_grad():
        for _ in range(20):
            log_weights, means, _ = fitted.mixture(track[:, -fitted.context:])
            track = torch.cat([track, (track[:, -1] + (log_weights.exp()[..., None] * means).sum(1) / 16)[:, None]], 1)
    mean_speeds = (track[:, 11:] - track[:, 10:-1]).norm(dim=-1).mean(0)
    assert speeds[-5:].mean() > mean_speeds[-5:].mean()


def test_the_mode_step_is_the_most_probable_components_mean(fitted):
    window = bouncing_paths(5, 6, seed=3)
    log_weights, means, log_scales = fitted.mixture(window)
    assert log_weights.shape == (5, 4) and means.shape == log_scales.shape == (5, 4, 2)
    torch.testing.assert_close(log_weights.exp().sum(-1), torch.ones(5))
    best = log_weights.argmax(-1)
    torch.testing.assert_close(fitted.mode_step(window) * 16, means[torch.arange(5), best])  # STEP_SCALE


def test_drawn_steps_are_components_means_chosen_by_weight_and_keep_the_speed(fitted):
    # a network whose mixture is the same for every window: weights 0.5 / 0.3 / 0.2, three distinct means
    dynamics = PathDynamics(context=3, components=3, hidden=4)
    with torch.no_grad():
        dynamics.net[-1].weight.zero_()
        bias = torch.zeros(3, 5)  # per component: log weight, mean x and y, log spread x and y
        bias[:, 0] = torch.tensor([0.5, 0.3, 0.2]).log()
        bias[:, 1], bias[:, 2] = torch.tensor([-1.0, 0.0, 1.0]), torch.tensor([2.0, 0.0, -2.0])
        dynamics.net[-1].bias.copy_(bias.flatten())
        draws = dynamics.drawn_step(torch.zeros(6000, 3, 2), torch.Generator().manual_seed(0)) * 16  # STEP_SCALE
    # every draw is one component's mean, each chosen as often as its weight to the power 1 / DRAW_TEMPERATURE
    distances = (draws[:, None] - bias[None, :, 1:3]).norm(dim=-1)  # (draws, components)
    assert float(distances.min(-1).values.max()) < 1e-5
    shares = torch.nn.functional.one_hot(distances.argmin(-1), 3).float().mean(0)
    sharpened = torch.tensor([0.5, 0.3, 0.2]) ** (1 / DRAW_TEMPERATURE)
    torch.testing.assert_close(shares, sharpened / sharpened.sum(), atol=0.02, rtol=0)
    # seeded rolls: reproducible, different from the mode path, and they keep the data's speed
    truth = bouncing_paths(400, 30, seed=1, jitter=0.0)
    bounds = torch.tensor([[-BOX, -BOX], [BOX, BOX]])
    first = fitted.roll(truth[:, :10], 20, bounds, sample=True, generator=torch.Generator().manual_seed(0))
    again = fitted.roll(truth[:, :10], 20, bounds, sample=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(first, again) and not torch.equal(first, fitted.roll(truth[:, :10], 20, bounds))
    speeds = (first[:, 11:] - first[:, 10:-1]).norm(dim=-1).mean()
    real = (truth[:, 1:] - truth[:, :-1]).norm(dim=-1).mean()
    assert abs(float(speeds / real) - 1) < 0.15


def test_the_negative_log_likelihood_is_a_mixture_of_gaussians():
    """Against torch.distributions, term by term, up to the scaling's constant (2 log STEP_SCALE per step)."""
    dynamics = PathDynamics(context=3, components=2, hidden=8)
    window, step = bouncing_paths(7, 3, seed=4), 0.1 * torch.randn(7, 2, generator=torch.Generator().manual_seed(5))
    log_weights, means, log_scales = dynamics.mixture(window)
    components = torch.distributions.Independent(torch.distributions.Normal(means, log_scales.exp()), 1)
    reference = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=log_weights), components)
    torch.testing.assert_close(dynamics.negative_log_likelihood(window, step),
                               -reference.log_prob(step * 16).mean())


def test_a_stored_dynamics_rolls_the_same_and_a_damaged_one_is_refused(fitted):
    state = fitted.state_dict()
    again = PathDynamics.from_state_dict(state)
    paths = bouncing_paths(9, 8, seed=6)
    torch.testing.assert_close(again.roll(paths, 5), fitted.roll(paths, 5), rtol=0, atol=0)
    with pytest.raises(ValueError, match="keys"):
        PathDynamics.from_state_dict({**state, "extra": 1})
    with pytest.raises(ValueError, match="NaN"):
        PathDynamics.from_state_dict({**state, "weights": {**state["weights"],
                                                             "0.bias": torch.full((64,), float("nan"))}})
    with pytest.raises(ValueError, match="sizes"):
        PathDynamics.from_state_dict({**state, "hidden": 32})
    with pytest.raises(ValueError, match="at least 6 frames"):
        fitted.roll(paths[:, :5], 3)
    # how the training paths were refined travels with it; a state written before that was recorded reads 0
    refined = PathDynamics.from_state_dict({**state, "refine_steps": 10})
    assert refined.refine_steps == 10 and PathDynamics.from_state_dict(refined.state_dict()).refine_steps == 10
    older = {key: value for key, value in state.items() if key != "refine_steps"}
    assert PathDynamics.from_state_dict(older).refine_steps == 0
    with pytest.raises(ValueError, match="refine_steps"):
        PathDynamics(refine_steps=-1)


def test_the_dynamics_are_fitted_to_the_refined_paths_of_an_object_model():
    """``fit_prior`` refines the dynamics' paths (``dynamics_refine_steps``) with the model's own
    ``refine_positions``, records it, and leaves the path mixture's paths as encoded."""
    from models.fitted_prior import prior_codes
    from tests.test_models import moving_squares, tiny_model

    model = tiny_model("disentangled:keypoints").eval()
    videos = [moving_squares(6, 6, seed=4)]
    with torch.no_grad():
        raw = prior_codes(model, videos).paths
        refined = prior_codes(model, videos, refine_steps=3).paths
        content, motion = model.split(videos[0])
        expected = model.object_positions(model.refine_positions(videos[0], content, motion, steps=3))
    torch.testing.assert_close(refined.float(), expected.transpose(1, 2).flatten(0, 1).flatten(1))
    assert not torch.allclose(refined, raw)
    with torch.no_grad():
        prior = fit_prior(model, videos, components=2, steps=2, path_components=2, dynamics_refine_steps=3)
        plain = fit_prior(model, videos, components=2, steps=2, path_components=2, dynamics_refine_steps=0)
    assert prior.paths.dynamics.refine_steps == 3 and plain.paths.dynamics.refine_steps == 0
    assert "refined by 3 steps" in prior.describe()["motion"] and "refined" not in plain.describe()["motion"]
    torch.testing.assert_close(prior.paths.mixture.means, plain.paths.mixture.means)  # the draws' paths as encoded
    assert not torch.equal(prior.paths.dynamics.net[0].weight, plain.paths.dynamics.net[0].weight)
    with pytest.raises(ValueError, match="dynamics_refine_steps"):
        fit_prior(model, videos, dynamics_refine_steps=-1)
    # a model without refine_positions: its paths as encoded, and the record says so
    assert fit_prior(_TwoObjectPaths(frames=8), [torch.zeros(300, 8, 1, 4, 4)], components=3, steps=10,
                     path_components=3).paths.dynamics.refine_steps == 0


def test_the_path_prior_rolls_its_mode_path_with_the_dynamics_and_draws_as_before():
    model = _TwoObjectPaths(frames=8)
    prior = fit_prior(model, [torch.zeros(300, 8, 1, 4, 4)], components=3, steps=10, path_components=3)
    assert prior.paths.dynamics is not None and prior.paths.dynamics.context == 7  # at most the frames less one
    plain = fit_prior(model, [torch.zeros(300, 8, 1, 4, 4)], components=3, steps=10, path_components=3,
                      dynamics=False)
    assert plain.paths.dynamics is None
    paths = model.object_positions(model.split(torch.zeros(6, 8, 1, 4, 4))[1]).transpose(1, 2).reshape(12, 8, 2)
    mode = prior.paths.continue_paths(paths, 5, mean=True)
    torch.testing.assert_close(mode, prior.paths.dynamics.roll(paths.double(), 5, prior.paths.bounds))
    # the straight lines go on at about 0.1 a frame (a fit of 60 steps), kept in the box of the training positions
    low, high = prior.paths.bounds
    steps = (mode[:, 8:] - mode[:, 7:-1])[..., 0].abs()
    inside = (mode[:, 8:, 0] > low[0] + 0.1) & (mode[:, 8:, 0] < high[0] - 0.1)
    assert abs(float(steps[inside].mean()) - 0.1) < 0.02 and bool(((mode >= low) & (mode <= high))[:, 8:].all())
    # fewer observed frames than the dynamics read: the mixture's mode path, as without them
    torch.testing.assert_close(prior.paths.continue_paths(paths[:, :4], 5, mean=True, context=3),
                               PathPrior(prior.paths.mixture, 8, 2, prior.paths.bounds)
                               .continue_paths(paths[:, :4], 5, mean=True, context=3))
    # a prediction's draws roll the dynamics, components drawn by weight; other draws (a sample's) never read them
    torch.testing.assert_close(
        prior.paths.continue_paths(paths, 5, torch.Generator().manual_seed(0), dynamics_draws=True),
        prior.paths.dynamics.roll(paths.double(), 5, prior.paths.bounds, sample=True,
                                  generator=torch.Generator().manual_seed(0)))
    draw = prior.paths.continue_paths(paths, 5, torch.Generator().manual_seed(0))
    without = PathPrior(prior.paths.mixture, 8, 2, prior.paths.bounds).continue_paths(
        paths, 5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(draw, without)
    assert "mixture density network" in prior.describe()["motion"]


class _AnyLength(_TwoObjectPaths):
    """The stand-in's straight lines over as many frames as the video has."""

    def split(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.frames = video.shape[1]
        return super().split(video)


def test_the_dynamics_travel_in_the_prior_and_formats_4_and_5_still_load():
    model = longer = _AnyLength()
    prior = fit_prior(model, [torch.zeros(200, 6, 1, 4, 4)], components=2, steps=5, path_components=2,
                      path_videos=[torch.zeros(200, 12, 1, 4, 4)])
    assert prior.paths.frames == 6 and prior.paths.dynamics.context == 9  # fitted to the 12-frame paths
    state = prior.state_dict()
    assert {5, 6} <= set(READABLE_VERSIONS) and state["format_version"] == 6
    loaded = FittedPrior.from_state_dict(state)
    format_5 = {**state, "format_version": 5, "paths": {**state["paths"], "dynamics": {
        key: value for key, value in state["paths"]["dynamics"].items() if key != "refine_steps"}}}
    assert FittedPrior.from_state_dict(format_5).paths.dynamics.refine_steps == 0  # fitted to unrefined paths
    paths = longer.object_positions(longer.split(torch.zeros(4, 12, 1, 4, 4))[1]).transpose(1, 2).reshape(8, 12, 2)
    torch.testing.assert_close(loaded.paths.continue_paths(paths, 4, mean=True),
                               prior.paths.continue_paths(paths, 4, mean=True), rtol=0, atol=0)
    old = {**state, "format_version": 4, "paths": {key: value for key, value in state["paths"].items()
                                                   if key != "dynamics"}}
    assert FittedPrior.from_state_dict(old).paths.dynamics is None


def test_the_path_dynamics_are_fitted_to_training_videos_twice_as_long():
    from training.fit_prior import LongerTrainingVideos, _with_path_videos

    config = DataConfig(train_size=40, val_size=4, test_size=4, video=MovingMNISTConfig(num_frames=5))
    loader = data_loaders(config, 8)[0]
    options = _with_path_videos(loader, {"max_videos": 30})
    longer = options["path_videos"]
    assert isinstance(longer, LongerTrainingVideos)
    batches = list(longer)
    assert sum(batch["video"].shape[0] for batch in batches) == 30 and len(list(longer)) == len(batches)
    first = loader.dataset.generate(range(3))["video"]
    assert batches[0]["video"].shape[1] == 10 and torch.equal(batches[0]["video"][:3, :5], first)
    assert _with_path_videos(loader, {"path_videos": None})["path_videos"] is None  # an explicit choice kept
    assert "path_videos" not in _with_path_videos([torch.zeros(2, 5, 1, 64, 64)], {})  # not generated videos
    shorter = MovingMNIST("train", 12, dataclasses.replace(config.video, num_frames=3), seed=1)
    assert LongerTrainingVideos(shorter, 50).count == 12
