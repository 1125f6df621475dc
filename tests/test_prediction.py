"""Tests of the ``predict`` verb (issue 30), parametrized over the registry and the Disentangled VAE's
architectures, with and without a fitted path prior; and of the path prior's mode continuation."""

from __future__ import annotations

import pytest
import torch

from models import MODELS
from models.fitted_prior import GaussianMixture, PathPrior, fit_gaussian_mixture, fit_prior
from tests.test_models import BAD_VIDEOS, FRAMES, OTHER_ARCHITECTURES, moving_squares, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = list(MODELS) + OTHER_ARCHITECTURES
FUTURE = 3


def with_path_prior(model):
    """The model with an ex-post prior fitted to a few tiny videos (a path prior for object architectures)."""
    with torch.no_grad():
        model.set_fitted_prior(fit_prior(model, [moving_squares(4, FRAMES, seed=1)], components=2, steps=2,
                                         path_components=2))
    return model


@pytest.fixture(params=NAMES + ["disentangled+paths", "disentangled:keypoints+paths"])
def model(request):
    name, _, fitted = request.param.partition("+")
    built = tiny_model(name).eval()
    return with_path_prior(built) if fitted else built


@pytest.fixture
def video():
    return moving_squares()


def test_shapes_finite_and_in_range(model, video):
    with torch.no_grad():
        predicted = model.predict(video, FUTURE)
        drawn = model.predict(video, FUTURE, samples=4, generator=torch.Generator().manual_seed(0))
    assert predicted.shape == (video.shape[0], FUTURE, *video.shape[2:])
    assert drawn.shape == (4, video.shape[0], FUTURE, *video.shape[2:])
    for frames in (predicted, drawn):
        assert torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    assert isinstance(model.prediction_description(), str) and model.prediction_description()


def test_deterministic_by_default_and_seeded_samples(model, video):
    with torch.no_grad():
        assert torch.equal(model.predict(video, FUTURE), model.predict(video, FUTURE))
        first = model.predict(video, FUTURE, samples=3, generator=torch.Generator().manual_seed(7))
        again = model.predict(video, FUTURE, samples=3, generator=torch.Generator().manual_seed(7))
        other = model.predict(video, FUTURE, samples=3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_prediction_past_the_training_length(model, video):
    """The tiny models saw (and the path prior was fitted to) FRAMES-frame videos; predict four times that."""
    with torch.no_grad():
        long = model.predict(video, 4 * FRAMES)
        short = model.predict(video, FUTURE)
    assert long.shape[1] == 4 * FRAMES and torch.isfinite(long).all()
    # Frame by frame (or block by block): the first frames do not depend on how far one predicts.
    assert torch.allclose(long[:, :FUTURE], short, atol=1e-5)


@pytest.mark.parametrize("name", ["disentangled", "disentangled+paths", "disentangled:pooled"])
def test_the_observed_content_is_held_fixed(name, video, monkeypatch):
    base, _, fitted = name.partition("+")
    model = tiny_model(base).eval()
    if fitted:
        with_path_prior(model)
    seen = {}
    original = model._continue_latents

    def spy(*args, **kwargs):
        seen.update(original(*args, **kwargs))
        return seen

    monkeypatch.setattr(model, "_continue_latents", spy)
    with torch.no_grad():
        content, _ = model.split(video)
        model.predict(video, FUTURE)
        assert torch.equal(seen["content"], content)
        model.predict(video, FUTURE, samples=2, generator=torch.Generator().manual_seed(0))
        assert torch.equal(seen["content"], content.repeat(2, 1))


def test_the_baseline_repeats_its_last_reconstructed_frame(video):
    model = tiny_model("baseline").eval()
    with torch.no_grad():
        last = model.reconstruct(video)[:, -1:]
        assert torch.allclose(model.predict(video, FUTURE), last.expand(-1, FUTURE, -1, -1, -1), atol=1e-6)


def test_a_path_prior_continues_the_observed_positions(video):
    model = with_path_prior(tiny_model("disentangled").eval())
    with torch.no_grad():
        _, motion = model.split(video)
        observed = model.object_positions(motion)
        seen = {}
        original = model._continue_latents

        def spy(*args, **kwargs):
            seen.update(original(*args, **kwargs))
            return seen

        model._continue_latents = spy
        model.predict(video, FUTURE)
        future = model.object_positions(seen["motion"])
    tracks = observed.transpose(1, 2).reshape(-1, FRAMES, 2).double()
    expected = model.fitted_prior.paths.continue_paths(tracks, FUTURE, mean=True)[:, FRAMES:]
    expected = expected.view(video.shape[0], model.object_slots, FUTURE, 2).transpose(1, 2)
    assert torch.allclose(future.double(), expected, atol=1e-4)


BAD_ARGUMENTS = [({"future_frames": 0}, "future_frames"), ({"future_frames": -2}, "future_frames"),
                 ({"future_frames": 1.5}, "future_frames"), ({"future_frames": True}, "future_frames"),
                 ({"future_frames": 2, "samples": 0}, "samples"), ({"future_frames": 2, "samples": 2.0}, "samples")]


@pytest.mark.parametrize("bad", list(BAD_VIDEOS))
@pytest.mark.parametrize("name", list(MODELS))
def test_bad_videos_are_one_value_error(name, bad, video):
    corrupt, message = BAD_VIDEOS[bad]
    with pytest.raises(ValueError, match=message):
        tiny_model(name).predict(corrupt(video), 2)


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
def test_bad_arguments_are_one_value_error(arguments, message, video):
    with pytest.raises(ValueError, match=message):
        tiny_model("disentangled").predict(video, **arguments)


def test_one_observed_frame_is_refused():
    with pytest.raises(ValueError, match="T must be at least 2"):
        tiny_model("lstm").predict(moving_squares(frames=1), 2)


def straight_paths(count: int, frames: int, seed: int = 0) -> torch.Tensor:
    """``(count, frames, 2)`` constant-velocity paths in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    start = torch.rand(count, 1, 2, generator=generator, dtype=torch.float64) * 0.6 - 0.3
    velocity = (torch.rand(count, 1, 2, generator=generator, dtype=torch.float64) - 0.5) * 0.1
    return start + velocity * torch.arange(frames, dtype=torch.float64)[None, :, None]


def test_the_mode_continuation_of_straight_paths_goes_straight_on():
    paths = straight_paths(400, 6)
    prior = PathPrior(fit_gaussian_mixture(paths.flatten(1), components=1, covariance="full", steps=2,
                                           regularization=1e-10), 6, 1)
    observed = straight_paths(5, 6, seed=1)
    continued = prior.continue_paths(observed[:, :2], 10, mean=True)  # two blocks of four, then two frames
    velocity = observed[:, 1:2] - observed[:, :1]
    expected = observed[:, :1] + velocity * torch.arange(12, dtype=torch.float64)[None, :, None]
    assert continued.shape == (5, 12, 2)
    assert torch.allclose(continued, expected, atol=1e-6)


def test_the_mode_continuation_stays_in_the_box():
    mixture = GaussianMixture(torch.ones(1, dtype=torch.float64), torch.zeros(1, 6, dtype=torch.float64),
                              torch.eye(6, dtype=torch.float64)[None], "full")
    bounds = torch.tensor([[-0.5, -0.5], [0.5, 0.5]], dtype=torch.float64)
    prior = PathPrior(mixture, 3, 1, bounds)
    continued = prior.continue_paths(torch.full((2, 2, 2), 0.4, dtype=torch.float64), 5, mean=True)
    assert continued[:, 2:].abs().max() <= 0.5
