"""Tests of the disentanglement metrics (evaluation/disentanglement.py): the key table, and the whole suite
on an oracle "model" (renders from the true factors) and on each tiny untrained model. The factors and the
scores of oracle and leaky codes are tested in test_code_metrics.py, the array maths in test_code_scores.py,
the swaps in test_swap_protocol.py."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from torch import nn

import evaluation.disentanglement as disentanglement
from data import MovingMNIST, get_moving_mnist_dataloaders, render_digits
from evaluation.codes.factors import content_factors
from evaluation.disentanglement import compute_all_disentanglement_metrics
from evaluation.generation import compute_generation_metrics
from evaluation.judges import cache as judges_cache
from evaluation.judges import networks as judges_module
from evaluation.judges.remembered import RememberedReadings
from evaluation.metric_names import DISENTANGLEMENT_OUTPUT_KEYS, JUDGED_KEYS
from models import MODELS, build_model

IMAGE_SIZE, DIGIT_SIZE, FRAMES = 32, 14, 6


@pytest.fixture(scope="module")
def test_loader():
    # 40 videos in batches of 12: a short last batch, and partners that cross batch boundaries.
    _, _, loader = get_moving_mnist_dataloaders(
        batch_size=12, train_size=12, val_size=12, test_size=40,
        image_size=IMAGE_SIZE, digit_size=DIGIT_SIZE, num_frames=FRAMES,
    )  # fmt: skip
    return loader


# ---------------------------------------------------------------------------------------------------- whole suite


class OracleWorld:
    """Renders videos from factors and remembers them by their bytes, so reading a video is a lookup."""

    def __init__(self, dataset: MovingMNIST) -> None:
        self.dataset = dataset
        self.table: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _key(frames: torch.Tensor) -> str:
        return hashlib.sha1(frames.detach().cpu().contiguous().numpy().tobytes()).hexdigest()

    def render(self, digit_ids: torch.Tensor, trajectory: torch.Tensor) -> torch.Tensor:
        video = render_digits(self.dataset.digit_images(digit_ids), trajectory, self.dataset.config.image_size)
        for frames, ids, path in zip(video, digit_ids, trajectory, strict=True):
            self.table[self._key(frames)] = (ids.numpy().copy(), path.numpy().copy())
        return video

    def read(self, video: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        found = [self.table[self._key(frames)] for frames in video]
        return np.stack([ids for ids, _ in found]), np.stack([path for _, path in found])


class OracleModel(nn.Module):
    """A perfectly disentangled "model": content code = digit ids, motion code = the corners per frame."""

    def __init__(self, world: OracleWorld) -> None:
        super().__init__()
        self.world = world

    def split(self, video):
        ids, paths = self.world.read(video)
        return torch.from_numpy(ids).float(), torch.from_numpy(paths).flatten(2)  # (B, D), (B, T, 2D)

    def combine(self, content, motion):
        paths = motion.view(motion.shape[0], motion.shape[1], -1, 2)
        return self.world.render(content.round().long(), paths)

    def sample_factors(self, num_samples, num_frames, generator=None):
        indices = torch.randint(10**6, 10**7, (num_samples,), generator=generator).numpy()
        factors = self.world.dataset.factors(indices)
        paths = torch.from_numpy(factors["trajectory"][:, :num_frames])
        return torch.from_numpy(factors["digit_ids"]).float(), paths.flatten(2)

    def sample(self, num_samples, num_frames, generator=None):
        return self.combine(*self.sample_factors(num_samples, num_frames, generator))


class OracleJudges:
    """Reads the true factors of any video the oracle world rendered."""

    def __init__(self, world: OracleWorld) -> None:
        self.world = world

    def read_content(self, video):
        ids, _ = self.world.read(video)
        return torch.from_numpy(np.sort(self.world.dataset.digits.labels[ids], axis=1))

    def read_motion(self, video):
        return torch.from_numpy(self.world.read(video)[1])

    def content_probabilities(self, video):
        labels = self.read_content(video).numpy()
        return torch.from_numpy(content_factors(labels) / labels.shape[1])


class LogProbOracleJudges:
    """Oracle judges with the interface of :class:`evaluation.judges.networks.Judges`: ``read`` and per-digit
    ``read_content_log_probs`` (no ``content_probabilities``)."""

    def __init__(self, world: OracleWorld) -> None:
        self.oracle = OracleJudges(world)

    def read(self, video):
        return self.oracle.read_content(video), self.oracle.read_motion(video)

    def read_content(self, video):
        raise AssertionError("read() should be used: one detector pass")

    read_motion = read_content

    def read_content_log_probs(self, video):
        labels = self.oracle.read_content(video)
        return torch.log(torch.nn.functional.one_hot(labels, 10).double() * 0.9 + 0.01)  # (B, D, 10)


class RandomJudges:
    """Judges that guess (seeded): every judged key is then a finite number for any model."""

    def __init__(self, num_digits: int) -> None:
        self.rng, self.num_digits = np.random.default_rng(0), num_digits

    def read_content(self, video):
        return torch.from_numpy(np.sort(self.rng.integers(0, 10, (video.shape[0], self.num_digits)), axis=1))

    def read_motion(self, video):
        return torch.from_numpy(self.rng.uniform(0, 18, (video.shape[0], video.shape[1], self.num_digits, 2)))

    def content_probabilities(self, video):
        return torch.from_numpy(self.rng.dirichlet(np.ones(10), video.shape[0]))


def assert_every_key(results: dict) -> None:
    assert list(results) == list(DISENTANGLEMENT_OUTPUT_KEYS)
    for key, value in results.items():
        if key == "notes":
            assert isinstance(value, list) and all(isinstance(note, str) for note in value)
        elif key in ("num_videos", "num_frames"):
            assert isinstance(value, int)
        else:
            assert isinstance(value, float), key  # finite, NaN or (PSNR) +inf


def test_the_table_documents_every_key():
    doc = disentanglement.__doc__
    for key in DISENTANGLEMENT_OUTPUT_KEYS:
        assert f"``{key}``" in doc, key


def test_a_perfect_oracle_swaps_perfectly(test_loader):
    world = OracleWorld(test_loader.dataset)
    for batch in test_loader:  # the real videos, so split() can read them
        world.render(batch["digit_ids"], batch["trajectory"])
    results = compute_all_disentanglement_metrics(
        OracleModel(world), test_loader, "cpu", max_samples=36, judges=OracleJudges(world)
    )
    assert_every_key(results)
    assert results["num_videos"] == 36 and results["num_frames"] == FRAMES
    assert results["swap_fidelity_psnr"] == math.inf
    assert results["swap_fidelity_ssim"] == pytest.approx(1.0)
    for key in ("judge_content_digit_accuracy", "recon_content_accuracy", "content_preservation",
                "resample_motion_content_accuracy", "motion_correlation", "swap_quality"):
        assert results[key] == pytest.approx(1.0), key
    for key in ("judge_motion_trajectory_error_px", "recon_trajectory_error_px", "swap_trajectory_error_px",
                "resample_content_trajectory_error_px"):
        assert results[key] == pytest.approx(0.0, abs=1e-6), key
    assert results["content_accuracy_chance"] < 0.5
    assert results["swap_content_leak_accuracy"] == pytest.approx(results["content_accuracy_chance"])
    assert results["resample_motion_trajectory_error_px"] > 1.0
    assert results["trajectory_error_chance_px"] > 1.0
    assert results["motion_correlation_chance"] < 0.9
    assert results["sample_inception_score"] > 3.0


@pytest.mark.parametrize("name", list(MODELS))
def test_every_key_on_each_tiny_untrained_model(name, test_loader):
    torch.manual_seed(0)
    fields = {"image_size": IMAGE_SIZE, "width": 8, "feature_dim": 32}
    for field in MODELS[name].config_class.__dataclass_fields__:
        if field.endswith("_dim") and field != "feature_dim":
            fields[field] = 8
        elif field.endswith("_hidden"):
            fields[field] = 16
    model = build_model(name, fields).train()
    skipped = compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=36, judges=None)
    assert_every_key(skipped)
    assert model.training  # mode restored
    assert all(math.isnan(skipped[key]) for key in JUDGED_KEYS)
    assert any("judges=None" in note for note in skipped["notes"])
    assert math.isfinite(skipped["swap_fidelity_psnr"]) and math.isfinite(skipped["sap_disentanglement"])
    judged = compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=36,
                                                 judges=RandomJudges(num_digits=2))
    assert_every_key(judged)
    assert all(math.isfinite(judged[key]) for key in JUDGED_KEYS), judged


class OracleTracker(OracleModel):
    """The oracle as an object model whose slots sit on each digit's ink centre, computed here by loops."""

    config = type("Config", (), {"architecture": "keypoints", "slots": 2})()

    def track(self, video):
        ids, paths = self.world.read(video)
        images = self.world.dataset.digit_images(ids).double().numpy()  # (B, D, s, s)
        size = video.shape[-1]
        positions = np.zeros(paths.shape)
        for b, d in np.ndindex(ids.shape):
            image = images[b, d]
            x = sum(image[i, j] * (j + 0.5) for i in range(image.shape[0]) for j in range(image.shape[1]))
            y = sum(image[i, j] * (i + 0.5) for i in range(image.shape[0]) for j in range(image.shape[1]))
            centre = np.array([x, y]) / image.sum()
            positions[b, :, d] = 2 * (np.round(paths[b, :, d]) + centre) / size - 1
        return torch.from_numpy(positions).float()


def test_slot_errors_are_measured_to_the_digits_ink_centres(test_loader):
    world = OracleWorld(test_loader.dataset)
    for batch in test_loader:
        world.render(batch["digit_ids"], batch["trajectory"])
    results = compute_all_disentanglement_metrics(OracleTracker(world), test_loader, "cpu", max_samples=24,
                                                  judges=None)
    assert results["localisation_median_error_px"] == pytest.approx(0.0, abs=1e-4)
    assert results["localisation_p90_error_px"] == pytest.approx(0.0, abs=1e-4)
    assert results["localisation_slot_consistency"] == 1.0


def test_judges_with_read_and_per_digit_log_probabilities(test_loader):
    world = OracleWorld(test_loader.dataset)
    for batch in test_loader:
        world.render(batch["digit_ids"], batch["trajectory"])
    results = compute_all_disentanglement_metrics(
        OracleModel(world), test_loader, "cpu", max_samples=24, judges=LogProbOracleJudges(world)
    )
    assert results["content_preservation"] == 1.0 and results["motion_correlation"] == pytest.approx(1.0)
    assert 3.0 < results["sample_inception_score"] < 10.0  # per-digit probabilities, smoothed
    assert results["sample_entropy_marginal"] > results["sample_entropy_conditional"]


def test_untrained_project_judges_fit_the_interface(test_loader):
    judges = judges_module.Judges(test_loader.dataset.config).eval()
    model = build_model("disentangled", image_size=IMAGE_SIZE, width=8, feature_dim=32, content_dim=8,
                        motion_dim=8, lstm_hidden=16, prior_hidden=16)
    results = compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=12, judges=judges)
    assert_every_key(results)
    assert all(math.isfinite(results[key]) or key.startswith("motion_correlation") for key in JUDGED_KEYS)


def test_remembered_readings_read_each_real_video_once_and_change_no_number(test_loader):
    # The pipeline wraps the judges so that the tally's read and the generation metrics' describe of the
    # same real test videos are one reading: every judged and generation number must stay exactly as it was.
    judges = judges_module.Judges(test_loader.dataset.config).eval()
    model = build_model("disentangled", image_size=IMAGE_SIZE, width=8, feature_dim=32, content_dim=8,
                        motion_dim=8, lstm_hidden=16, prior_hidden=16).eval()
    video = next(iter(test_loader))["video"]
    remembered = RememberedReadings(judges)
    labels, trajectory = judges.read(video)
    again = remembered.read(video)
    assert torch.equal(again[0], labels) and torch.equal(again[1], trajectory)
    assert remembered.describe(video.clone()) is remembered.describe(video) and remembered.remembered == 1
    assert remembered.accuracy == judges.accuracy and not hasattr(remembered, "content_probabilities")
    plain = compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=24, judges=judges)
    wrapped = RememberedReadings(judges)
    same = compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=24, judges=wrapped)
    assert repr(same) == repr(plain)  # exactly, NaN included
    generated = compute_generation_metrics(model, test_loader, judges, "cpu", max_videos=24, seed=3)
    assert repr(compute_generation_metrics(model, test_loader, wrapped, "cpu", max_videos=24, seed=3)) == repr(generated)
    # the real videos the tally read were not read again by the generation metrics
    calls = []
    counting = RememberedReadings(judges)
    counting.judges = type("Counting", (), {"describe": lambda self, video: calls.append(1) or judges.describe(video),
                                             "accuracy": {}})()
    compute_all_disentanglement_metrics(model, test_loader, "cpu", max_samples=24, judges=counting)
    tally_calls = len(calls)
    compute_generation_metrics(model, test_loader, counting, "cpu", max_videos=24, seed=3)
    # 2 batches of 12, 5 kinds of video each: the real videos are remembered, and here the reconstructions
    # too (this model's reconstruct is bitwise its combine(split), which the tally read)
    assert len(calls) - tally_calls == 2 * 3


def test_auto_judges_come_from_evaluation_judges(test_loader, monkeypatch):
    world = OracleWorld(test_loader.dataset)
    for batch in test_loader:
        world.render(batch["digit_ids"], batch["trajectory"])
    calls = []

    def get_judges(config, device, digits):
        calls.append((config, device, digits))
        return OracleJudges(world)

    monkeypatch.setattr(judges_cache, "get_judges", get_judges)
    results = compute_all_disentanglement_metrics(OracleModel(world), test_loader, "cpu", max_samples=12)
    # The judges are those of the loader's own video config and digit set (embedded or official files).
    assert calls == [(test_loader.dataset.config, torch.device("cpu"), test_loader.dataset.digits)]
    assert results["content_preservation"] == 1.0


def test_a_loader_without_factors_is_refused():
    loader = [{"video": torch.zeros(4, FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)}]
    with pytest.raises(ValueError, match="ground-truth factors"):
        compute_all_disentanglement_metrics(nn.Identity(), loader, "cpu", judges=None)
