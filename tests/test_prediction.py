"""Tests of the ``predict`` verb (issue 30), parametrized over the registry and the Disentangled VAE's
architectures, with and without a fitted path prior; and of the path prior's mode continuation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evaluation import prediction
from models import MODELS
from models.disentangled_vae import OBJECT_ARCHITECTURES, REFINE_STEP_PIXELS
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


@pytest.fixture(params=NAMES + ["disentangled:slots+paths", "disentangled:keypoints+paths"])
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


@pytest.mark.parametrize("name", ["disentangled", "disentangled+paths", "disentangled:slots+paths",
                                  "disentangled:pooled"])
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


@pytest.mark.parametrize("architecture", OBJECT_ARCHITECTURES)
def test_a_path_prior_continues_the_observed_positions(architecture, video):
    model = with_path_prior(tiny_model(f"disentangled:{architecture}").eval())
    with torch.no_grad():
        content, motion = model.split(video)
        observed = model.object_positions(model.refine_positions(video, content, motion))
        seen = {}
        original = model._continue_latents

        def spy(*args, **kwargs):
            seen.update(original(*args, **kwargs))
            return seen

        model._continue_latents = spy
        model.predict(video, FUTURE)
        future = model.object_positions(seen["motion"])
    tracks = observed.transpose(1, 2).reshape(-1, FRAMES, 2).double()
    expected = model.fitted_prior.paths.continue_paths(tracks, FUTURE, mean=True,
                                                       context=model.prediction_context(FRAMES))[:, FRAMES:]
    expected = expected.view(video.shape[0], model.object_slots, FUTURE, 2).transpose(1, 2)
    assert torch.allclose(future.double(), expected, atol=1e-4)
    # draws: the path dynamics rolled with components drawn by weight, from the caller's generator
    with torch.no_grad():
        model.predict(video, FUTURE, samples=2, generator=torch.Generator().manual_seed(5))
        drawn = model.object_positions(seen["motion"])
    rolled = model.fitted_prior.paths.dynamics.roll(tracks.repeat(2, 1, 1), FUTURE, model.fitted_prior.paths.bounds,
                                                    sample=True, generator=torch.Generator().manual_seed(5))
    rolled = rolled[:, FRAMES:].reshape(2 * video.shape[0], model.object_slots, FUTURE, 2).transpose(1, 2)
    assert torch.allclose(drawn.double(), rolled, atol=1e-4)


@pytest.mark.parametrize("architecture", OBJECT_ARCHITECTURES)
def test_refining_finds_the_positions_a_video_was_drawn_at(architecture):
    """Frames the decoder drew at known positions, refined from positions 1.5 px off (one slot: with two, an
    empty slot's position is not in the frames): the refinement goes most of the way back, and lowers the
    reconstruction loss it descends."""
    model = tiny_model(f"disentangled:{architecture}", slots=1).eval()
    video = moving_squares(4, FRAMES, seed=3)
    with torch.no_grad():
        content, motion = model.split(video)
        truth = (torch.rand(4, FRAMES, 1, 2, generator=torch.Generator().manual_seed(1)) - 0.5) * 1.2
        drawn = model.combine(content, model.with_object_positions(motion, truth))
        pixel = 2.0 / drawn.shape[-1]
        start = model.with_object_positions(
            motion, truth + 1.5 * pixel * torch.randn(truth.shape, generator=torch.Generator().manual_seed(2)))
        refined = model.refine_positions(drawn, content, start)

        def error(codes):
            return float((model.object_positions(codes) - truth).norm(dim=-1).mean() / pixel)

        def loss(codes):
            logits = model._decode_logits(model._latents_from_factors(content, codes))
            return float(model.reconstruction_loss(logits, drawn))

        assert error(refined) < 0.5 * error(start)
        assert loss(refined) < loss(start)
    assert all(parameter.grad is None for parameter in model.parameters())


@pytest.mark.parametrize("architecture", OBJECT_ARCHITECTURES)
def test_refining_moves_the_positions_only_and_zero_steps_nothing(architecture, video):
    model = tiny_model(f"disentangled:{architecture}").eval()
    with torch.no_grad():
        content, motion = model.split(video)
        refined = model.refine_positions(video, content, motion, steps=3)
        assert torch.equal(model.refine_positions(video, content, motion, steps=0), motion)
        moved = model.object_positions(refined)
        assert not torch.allclose(moved, model.object_positions(motion))
        assert torch.allclose(model.object_positions(model.with_object_positions(motion, moved)), moved, atol=1e-5)
        if architecture == "keypoints":  # the code's other numbers as they were
            assert torch.equal(refined[..., 2 * model.object_slots:], motion[..., 2 * model.object_slots:])
        # The step is in pixels of the frame: Adam moves each number about its rate a step (at most twice it here).
        pixel = 2.0 / video.shape[-1]
        assert float((moved - model.object_positions(motion)).abs().max()) <= 3 * 2 * REFINE_STEP_PIXELS * pixel
    with pytest.raises(ValueError, match="steps"):
        model.refine_positions(video, content, motion, steps=-1)
    conv = tiny_model("disentangled:pooled")
    with pytest.raises(ValueError, match="object architecture"):
        conv.refine_positions(video, *conv.split(video))


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


# ----------------------------------------------------------------------------------------------------
# evaluation/prediction.py: the metrics against independent references


def random_pair(batch: int = 2, frames: int = 3, size: int = 16, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(batch, frames, 1, size, size, generator=generator)
    pred = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    return pred, target


def test_frame_metrics_agree_with_numpy_loops_and_skimage():
    pred, target = random_pair()
    ours = prediction.frame_metrics(pred, target)
    p, t = pred.double().numpy(), target.double().numpy()
    for b in range(p.shape[0]):
        for f in range(p.shape[1]):
            a, c = p[b, f, 0], t[b, f, 0]
            squared = sum((a[i, j] - c[i, j]) ** 2 for i in range(a.shape[0]) for j in range(a.shape[1]))
            assert ours["mse_per_frame"][b, f].item() == pytest.approx(squared, rel=1e-5)
            assert ours["mae_per_frame"][b, f].item() == pytest.approx(np.abs(a - c).sum(), rel=1e-5)
            assert ours["psnr"][b, f].item() == pytest.approx(
                peak_signal_noise_ratio(c, a, data_range=1.0), rel=1e-5)
            gaussian = structural_similarity(c, a, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                             data_range=1.0)
            assert ours["ssim"][b, f].item() == pytest.approx(gaussian, abs=1e-4)
            assert ours["ssim_uniform"][b, f].item() == pytest.approx(
                structural_similarity(c, a, data_range=1.0), abs=1e-4)


def test_the_summary_is_openstls_mean_over_videos_and_frames_of_pixel_sums():
    pred, target = random_pair(batch=3, frames=4)
    summary = prediction.summarize(prediction.frame_metrics(pred, target))
    e = (pred - target).double().numpy()
    assert summary["mse_per_frame"] == pytest.approx(np.mean(e ** 2, axis=(0, 1)).sum(), rel=1e-6)
    assert summary["mae_per_frame"] == pytest.approx(np.mean(np.abs(e), axis=(0, 1)).sum(), rel=1e-6)
    assert len(summary["ssim_by_frame"]) == 4
    assert np.mean(summary["psnr_by_frame"]) == pytest.approx(summary["psnr"])


def test_best_of_samples_picks_the_sample_nearest_the_truth():
    pred, target = random_pair()
    noise = torch.rand((4, *target.shape), generator=torch.Generator().manual_seed(3))
    samples = torch.cat([noise[:2], target[None], noise[2:]])  # sample 2 is the truth itself
    best, index = prediction.best_of_samples(samples, target)
    assert index.tolist() == [2, 2] and torch.equal(best, target)
    with pytest.raises(ValueError, match="expected samples"):
        prediction.best_of_samples(target, target)


def test_last_frame_prediction_and_windows():
    video = moving_squares()
    repeated = prediction.last_frame_prediction(video, 4)
    assert repeated.shape == (2, 4, *video.shape[2:]) and torch.equal(repeated[:, 3], video[:, -1])
    assert prediction.last_frame_prediction(video, 4, samples=3).shape == (3, 2, 4, *video.shape[2:])
    with pytest.raises(ValueError, match="future_frames"):
        prediction.last_frame_prediction(video, 0)
    assert prediction.windows(10, 100) == [(11 + 10 * k, 20 + 10 * k) for k in range(9)]
    assert prediction.windows(10, 25) == [(11, 20), (21, 25)]


def test_standard_metrics_of_a_perfect_and_of_the_last_frame_predictor():
    video = moving_squares(batch=3, frames=8)
    loader = [video[:2], {"video": video[2:]}]

    def oracle(context, future, samples=None, generator=None):
        truth = video[:, 4 : 4 + future] if context.shape[0] == 3 else None
        return truth if samples is None else truth[None].expand(samples, *truth.shape)

    perfect = prediction.standard_prediction_metrics(oracle, [video], observed=4, predicted=4, samples=2)
    assert perfect["mse_per_frame"] == 0 and perfect["ssim"] == pytest.approx(1) and perfect["num_videos"] == 3
    assert perfect["best_of_n"]["samples"] == 2 and perfect["best_of_n"]["mae_per_frame"] == 0
    last = prediction.standard_prediction_metrics(prediction.last_frame_prediction, loader, observed=4,
                                                  predicted=4, samples=None)
    expected = prediction.frame_metrics(video[:, 3:4].expand(-1, 4, -1, -1, -1), video[:, 4:])
    assert last["mse_per_frame"] == pytest.approx(float(expected["mse_per_frame"].mean()))
    assert "best_of_n" not in last and len(last["psnr_by_frame"]) == 4
    with pytest.raises(ValueError, match="at least 9 frames"):
        prediction.standard_prediction_metrics(prediction.last_frame_prediction, [video], observed=4, predicted=5)


class StandInJudges:
    """Judges that read the truth they are given for real frames and constant digits for the rest."""

    def __init__(self, labels, trajectory):
        self.labels, self.trajectory = labels, trajectory

    def read_content(self, video):
        return self.labels.clone() if video.abs().sum() > 0 else torch.zeros_like(self.labels)

    def read_motion(self, video):
        return torch.zeros(video.shape[0], video.shape[1], self.labels.shape[1], 2)


def test_long_horizon_windows_with_and_without_judges():
    video = moving_squares(batch=4, frames=25)
    labels = torch.tensor([[1, 2], [3, 4], [5, 6], [7, 8]])
    trajectory = torch.zeros(4, 25, 2, 2)
    batches = [{"video": video, "labels": labels, "trajectory": trajectory}]
    unjudged = prediction.long_horizon_metrics(prediction.last_frame_prediction, batches, None, observed=5,
                                               horizon=25)
    assert unjudged["windows"] == [[6, 15], [16, 25]] and math.isnan(unjudged["identity_kept_at_25"])
    assert len(unjudged["mse_per_frame_by_window"]) == 2 and unjudged["mse_per_frame_by_window"][0] > 0

    def blank(context, future, samples=None, generator=None):
        return torch.zeros(context.shape[0], future, *context.shape[2:])

    judges = StandInJudges(labels, trajectory)
    kept = prediction.long_horizon_metrics(prediction.last_frame_prediction, batches, judges, observed=5, horizon=25)
    lost = prediction.long_horizon_metrics(blank, batches, judges, observed=5, horizon=25)
    assert kept["identity_kept_by_window"] == [1.0, 1.0] and kept["real_identity_kept_by_window"] == [1.0, 1.0]
    assert lost["identity_kept_at_25"] == 0.0 and kept["path_error_px_by_window"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="videos of 30 frames"):
        prediction.long_horizon_metrics(blank, batches, None, observed=5, horizon=30)


def test_a_longer_context_also_goes_straight_on_and_a_bad_one_is_refused():
    paths = straight_paths(400, 6)
    prior = PathPrior(fit_gaussian_mixture(paths.flatten(1), components=1, covariance="full", steps=2,
                                           regularization=1e-10), 6, 1)
    observed = straight_paths(5, 12, seed=2)
    continued = prior.continue_paths(observed[:, :4], 8, mean=True, context=4)  # blocks of two frames
    assert torch.allclose(continued, observed, atol=1e-6)
    for context in (0, 6, 5):  # 5 > the 4 frames given
        with pytest.raises(ValueError, match="context must be"):
            prior.continue_paths(observed[:, :4], 2, mean=True, context=context)
