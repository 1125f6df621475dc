"""Reconstruction metrics: agreement with scikit-image, hand-computed cases, and the loops over models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from data import MovingMNIST, MovingMNISTConfig, get_moving_mnist_dataloaders
from evaluation.metric_names import RECONSTRUCTION_KEYS
from evaluation.reconstruction.metrics import (
    bce_per_frame,
    compare_models,
    frame_psnr,
    mae_per_frame,
    mse,
    mse_per_frame,
    psnr,
    reconstruction_metrics,
    ssim,
    ssim_uniform,
    temporal_consistency,
    video_metrics,
)
from evaluation.reconstruction.ssim import frame_ssim
from models import build_model

TINY_VIDEO = MovingMNISTConfig(image_size=32, digit_size=14, num_frames=4)


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    return structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0
    )


def blur(video: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    offsets = torch.arange(-3, 4, dtype=video.dtype)
    taps = torch.exp(-0.5 * (offsets / sigma) ** 2)
    taps = taps / taps.sum()
    frames = video.flatten(0, 2)[:, None]  # (B*T*C, 1, H, W)
    frames = torch.nn.functional.conv2d(frames, taps.view(1, 1, 7, 1), padding=(3, 0))
    frames = torch.nn.functional.conv2d(frames, taps.view(1, 1, 1, 7), padding=(0, 3))
    return frames.view(video.shape)


def moving_mnist(num_videos: int = 2, config: MovingMNISTConfig | None = None) -> torch.Tensor:
    dataset = MovingMNIST("test", num_videos, config or MovingMNISTConfig(num_frames=3), seed=5)
    return dataset.generate(range(num_videos))["video"].double()


def image_pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Named ``(pred, target)`` pairs of videos ``(B, T, 1, H, W)``: random and structured."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(2, 3, 1, 40, 33, generator=generator, dtype=torch.float64)
    other = torch.rand(2, 3, 1, 40, 33, generator=generator, dtype=torch.float64)
    digits = moving_mnist()
    noisy = (digits + 0.1 * torch.randn(digits.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return {
        "random": (noise, other),
        "random_vs_smoothed": (blur(noise, 1.5), noise),
        "digits_blurred": (blur(digits), digits),
        "digits_noised": (noisy, digits),
        "digits_shifted": (digits.roll(3, dims=-1), digits),
        "digits_dimmed": (0.7 * digits, digits),
        "digits_vs_empty": (torch.zeros_like(digits), digits),
    }


# ----------------------------------------------------------------------------------------------------
# Agreement with scikit-image


@pytest.mark.parametrize("case", list(image_pairs()))
def test_frame_ssim_and_psnr_agree_with_skimage(case):
    pred, target = image_pairs()[case]
    ours_ssim, ours_psnr = frame_ssim(pred, target), frame_psnr(pred, target)
    assert ours_ssim.shape == ours_psnr.shape == pred.shape[:2]
    for b in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            a, ref = pred[b, t, 0].numpy(), target[b, t, 0].numpy()
            assert ours_ssim[b, t].item() == pytest.approx(skimage_ssim(ref, a), abs=1e-4)
            reference_psnr = peak_signal_noise_ratio(ref, a, data_range=1.0)
            assert ours_psnr[b, t].item() == pytest.approx(reference_psnr, abs=1e-4)


@pytest.mark.parametrize("case", ["random", "digits_blurred", "digits_noised", "digits_shifted"])
def test_uniform_window_ssim_agrees_with_skimage_defaults(case):
    pred, target = image_pairs()[case]
    ours = frame_ssim(pred, target, window="uniform")
    for b in range(pred.shape[0]):
        for t in range(pred.shape[1]):
            reference = structural_similarity(target[b, t, 0].numpy(), pred[b, t, 0].numpy(), data_range=1.0)
            assert ours[b, t].item() == pytest.approx(reference, abs=1e-4)
    assert torch.allclose(ssim_uniform(pred, target), ours.mean(dim=1))


def test_ssim_in_float32_agrees_with_skimage():
    pred, target = image_pairs()["digits_blurred"]
    ours = frame_ssim(pred.float(), target.float())
    reference = skimage_ssim(target[0, 0, 0].numpy(), pred[0, 0, 0].numpy())
    assert ours[0, 0].item() == pytest.approx(reference, abs=1e-4)


def test_ssim_averages_channels_as_skimage():
    generator = torch.Generator().manual_seed(1)
    target = torch.rand(1, 1, 3, 24, 24, generator=generator, dtype=torch.float64)
    pred = blur(target, 1.0)
    reference = structural_similarity(
        target[0, 0].numpy(), pred[0, 0].numpy(), channel_axis=0, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )
    assert frame_ssim(pred, target)[0, 0].item() == pytest.approx(reference, abs=1e-4)


def test_identical_videos_give_ssim_one_and_psnr_inf():
    video = moving_mnist()
    assert torch.allclose(ssim(video, video), torch.ones(2, dtype=torch.float64))
    assert torch.isinf(psnr(video, video)).all() and (psnr(video, video) > 0).all()
    assert mse(video, video).eq(0).all()


def test_psnr_average_is_per_frame_and_keeps_infinity():
    target = torch.zeros(1, 2, 1, 4, 4, dtype=torch.float64)
    pred = target.clone()
    pred[0, 0] = 0.1  # frame 0: MSE 0.01 -> 20 dB; frame 1: perfect -> inf
    assert frame_psnr(pred, target)[0, 0].item() == pytest.approx(20.0)
    assert math.isinf(psnr(pred, target)[0].item())
    pred[0, 1] = 0.01  # frame 1: MSE 1e-4 -> 40 dB; mean of 20 and 40, not PSNR of the mean MSE
    assert psnr(pred, target)[0].item() == pytest.approx(30.0)


def test_ssim_rejects_frames_smaller_than_the_window():
    video = torch.rand(1, 2, 1, 10, 10)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(video, video)
    with pytest.raises(ValueError, match="window"):
        frame_ssim(torch.rand(1, 2, 1, 16, 16), torch.rand(1, 2, 1, 16, 16), window="box")


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(1, 2, 1, 8, 8), torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        mse(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8))


# ----------------------------------------------------------------------------------------------------
# Hand-computed values


def test_per_frame_sums_on_hand_computed_values():
    target = torch.zeros(2, 2, 1, 2, 2)
    pred = torch.zeros(2, 2, 1, 2, 2)
    pred[0, 0, 0, 0, 0] = 0.5  # video 0, frame 0: one pixel off by 0.5
    pred[0, 1] = 0.25  # video 0, frame 1: four pixels off by 0.25
    pred[1] = 1.0  # video 1: every pixel off by 1
    # Video 0: frame sums of squares 0.25 and 4 * 0.0625 = 0.25; of absolutes 0.5 and 1.0.
    assert mse_per_frame(pred, target).tolist() == pytest.approx([0.25, 4.0])
    assert mae_per_frame(pred, target).tolist() == pytest.approx([0.75, 4.0])
    assert mse(pred, target).tolist() == pytest.approx([0.0625, 1.0])  # per pixel: sum / 4
    assert torch.allclose(mse_per_frame(pred, target), mse(pred, target) * 4)


def test_bce_per_frame_matches_the_formula():
    target = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 2, 1, 1, 2)
    pred = torch.tensor([0.5, 0.5, 0.9, 0.2]).view(1, 2, 1, 1, 2)
    frame0 = 2 * math.log(2.0)
    frame1 = -math.log(0.9) - math.log(0.8)
    assert bce_per_frame(pred, target).item() == pytest.approx((frame0 + frame1) / 2)


def test_temporal_consistency_on_hand_made_cases():
    video = moving_mnist(config=MovingMNISTConfig(num_frames=6))
    perfect = temporal_consistency(video, video)
    frozen = temporal_consistency(video[:, :1].expand_as(video), video)
    offset = temporal_consistency((video + 0.2).clamp(max=1.5), video)
    assert torch.equal(perfect, torch.zeros(2, dtype=torch.float64))
    assert (frozen > 0.01).all()  # a frozen copy of the first frame does not score well
    assert torch.allclose(offset, torch.zeros(2, dtype=torch.float64))
    # Two frames, two pixels: truth changes by (+1, 0); reconstruction by (+0.5, +0.5).
    target = torch.tensor([[0.0, 0.5], [1.0, 0.5]]).view(1, 2, 1, 1, 2)
    pred = torch.tensor([[0.0, 0.0], [0.5, 0.5]]).view(1, 2, 1, 1, 2)
    # ((0.5 - 1)^2 + (0.5 - 0)^2) / 2 = 0.25
    assert temporal_consistency(pred, target).item() == pytest.approx(0.25)


def test_temporal_consistency_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_consistency(torch.zeros(1, 1, 1, 4, 4), torch.zeros(1, 1, 1, 4, 4))


def test_video_metrics_returns_every_key_per_video():
    pred, target = image_pairs()["digits_blurred"]
    values = video_metrics(pred, target)
    assert set(values) == set(RECONSTRUCTION_KEYS)
    assert all(value.shape == (2,) for value in values.values())


# ----------------------------------------------------------------------------------------------------
# Loops over models and loaders


class Identity:
    """A perfect "model": reconstructs every video exactly."""

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        return video


class Halves:
    """Reconstructs every video as 0.5 everywhere (an easy exact value: MSE = mean (x - 0.5)^2)."""

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        return torch.full_like(video, 0.5)


def loader_of(num_videos: int, batch_size: int):
    """The project's test loader (batch dicts) over ``num_videos`` tiny videos."""
    _, _, test_loader = get_moving_mnist_dataloaders(
        batch_size=batch_size, train_size=2, val_size=2, test_size=num_videos, seed=1,
        image_size=TINY_VIDEO.image_size, digit_size=TINY_VIDEO.digit_size, num_frames=TINY_VIDEO.num_frames,
    )
    return test_loader


def test_reconstruction_metrics_of_a_perfect_model():
    results = reconstruction_metrics(Identity(), loader_of(5, 2), "cpu", progress=False)
    assert results["num_videos"] == 5
    assert results["mse"] == 0 and results["mse_per_frame"] == 0 and results["mae_per_frame"] == 0
    assert results["ssim"] == pytest.approx(1.0) and results["ssim_uniform"] == pytest.approx(1.0)
    assert math.isinf(results["psnr"])
    assert results["temporal_consistency"] == 0


def test_reconstruction_metrics_weight_videos_not_batches():
    loader = loader_of(5, 2)  # batches of 2, 2 and 1 videos
    videos = torch.cat([batch["video"] for batch in loader]).double()
    expected = (videos - 0.5).pow(2).mean().item()
    results = reconstruction_metrics(Halves(), loader, "cpu", progress=False)
    assert results["mse"] == pytest.approx(expected, rel=1e-6)
    one_batch = reconstruction_metrics(Halves(), loader_of(5, 5), "cpu", progress=False)
    for key in RECONSTRUCTION_KEYS:
        assert results[key] == pytest.approx(one_batch[key], rel=1e-6)
    first = reconstruction_metrics(Halves(), loader, "cpu", max_batches=1, progress=False)
    assert first["num_videos"] == 2


def test_reconstruction_metrics_restores_the_model_mode():
    model = build_model("baseline", image_size=32, width=8, feature_dim=16, latent_dim=8)
    model.train()
    results = reconstruction_metrics(model, loader_of(2, 2), "cpu", progress=False)
    assert model.training
    assert 0 < results["mse"] < 1 and -1 <= results["ssim"] <= 1 and math.isfinite(results["psnr"])


def test_compare_models_returns_every_key_for_two_tiny_models():
    torch.manual_seed(0)
    models = {
        "Baseline": build_model("baseline", image_size=32, width=8, feature_dim=16, latent_dim=8),
        "LSTM": build_model("lstm", image_size=32, width=8, feature_dim=32, latent_dim=8, lstm_hidden=16,
                            prior_hidden=16),
    }
    results = compare_models(models, loader_of(3, 2), "cpu", progress=False, warmup=1, repeats=2)
    assert set(results) == set(models)
    keys = set(RECONSTRUCTION_KEYS) | {
        "num_videos", "trainable_parameters", "total_parameters", "forward_time_ms", "generation_time_ms",
        "timed_batch_size", "timed_num_frames",
    }
    for name, row in results.items():
        assert set(row) == keys
        assert row["num_videos"] == 3
        assert row["trainable_parameters"] == sum(p.numel() for p in models[name].parameters()) > 0
        assert row["forward_time_ms"] > 0 and row["generation_time_ms"] > 0
        assert (row["timed_batch_size"], row["timed_num_frames"]) == (2, TINY_VIDEO.num_frames)
