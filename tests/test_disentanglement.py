"""Tests of the disentanglement metrics: oracle codes, hand-computed cases, independent references, and the
whole suite on an oracle "model" (renders from the true factors) and on each tiny untrained model."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mutual_info_score
from torch import nn

import evaluation.disentanglement as disentanglement
from data import MovingMNIST, get_moving_mnist_dataloaders, render_digits
from evaluation import judges as judges_module
from evaluation import scores
from evaluation.disentanglement import (
    code_metrics,
    compute_all_disentanglement_metrics,
    content_factors,
    motion_factors,
)
from evaluation.metric_names import DISENTANGLEMENT_OUTPUT_KEYS, JUDGED_KEYS
from evaluation.swap_protocol import swap_fidelity, trajectory_correlation
from models import MODELS, build_model

IMAGE_SIZE, DIGIT_SIZE, FRAMES = 32, 14, 6


def independent_factors(num: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two discrete factors (4 classes) and two continuous ones, all independent."""
    rng = np.random.default_rng(seed)
    values = np.concatenate([rng.integers(0, 4, size=(num, 2)), rng.uniform(size=(num, 2))], axis=1)
    return values, np.array([True, True, False, False])


@pytest.fixture(scope="module")
def test_loader():
    # 40 videos in batches of 12: a short last batch, and partners that cross batch boundaries.
    _, _, loader = get_moving_mnist_dataloaders(
        batch_size=12, train_size=12, val_size=12, test_size=40,
        image_size=IMAGE_SIZE, digit_size=DIGIT_SIZE, num_frames=FRAMES,
    )  # fmt: skip
    return loader


@pytest.fixture(scope="module")
def video_factors():
    """Factors of 300 videos (no pixels): labels (N, 2), trajectory (N, T, 2, 2)."""
    dataset = MovingMNIST("test", 300, config=None)
    factors = dataset.factors(np.arange(300))
    return factors["labels"], factors["trajectory"][:, :8]


# ---------------------------------------------------------------------------------------------------- SAP / MIG


def test_one_to_one_code_scores_near_the_top():
    factors, discrete = independent_factors()
    noise = np.random.default_rng(1).normal(size=(len(factors), 2))
    codes = np.concatenate([factors, noise], axis=1)
    sap = scores.sap_score(codes, factors, discrete)
    mig = scores.mig_score(codes, factors, discrete)
    assert sap["sap"] > 0.97
    assert mig["mig"] > 0.9
    np.testing.assert_allclose(np.diag(sap["score_matrix"][:4]), 1.0)


def test_constant_codes_score_zero():
    factors, discrete = independent_factors()
    codes = np.full((len(factors), 3), 0.7)
    assert scores.sap_score(codes, factors, discrete)["sap"] == 0.0
    assert scores.mig_score(codes, factors, discrete)["mig"] == 0.0


def test_a_duplicated_latent_lowers_sap_and_mig():
    factors, discrete = independent_factors()
    one_to_one = (scores.sap_score(factors, factors, discrete), scores.mig_score(factors, factors, discrete))
    codes = np.concatenate([factors[:, :1], factors], axis=1)  # factor 0 carried by two dimensions
    sap, mig = scores.sap_score(codes, factors, discrete), scores.mig_score(codes, factors, discrete)
    assert sap["per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert mig["per_factor"][0] == pytest.approx(0.0, abs=1e-9)
    assert sap["sap"] < one_to_one[0]["sap"] - 0.2
    assert mig["mig"] < one_to_one[1]["mig"] - 0.2


def test_shuffled_codes_score_near_zero():
    factors, discrete = independent_factors()
    codes = factors[np.random.default_rng(2).permutation(len(factors))]
    assert abs(scores.sap_score(codes, factors, discrete)["sap"]) < 0.05
    assert scores.mig_score(codes, factors, discrete)["mig"] < 0.05


def test_mig_hand_computed():
    # y = (0, 0, 1, 1). z0 = (0, 0, 0, 1): I = ln 2 - 3/4 h(1/3). z1 = (0, 1, 0, 1) is independent: I = 0.
    codes = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    factor = np.array([0, 0, 1, 1])
    binary_entropy = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    expected = (math.log(2) - 0.75 * binary_entropy) / math.log(2)  # 0.311278
    result = scores.mig_score(codes, factor, discrete=True)
    assert result["mig"] == pytest.approx(expected, rel=1e-9)
    assert result["mig"] == pytest.approx(0.311278, abs=1e-6)
    assert result["mutual_information"][1, 0] == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_agrees_with_sklearn_on_histogram_bins():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(500, 3)) + np.arange(3)
    labels = rng.integers(0, 5, size=500)
    codes[:, 0] += labels  # one informative dimension
    bins = scores.discretize(codes)
    for j in range(3):
        edges = np.histogram(codes[:, j], scores.NUM_BINS)[1][:-1]
        np.testing.assert_array_equal(bins[:, j], np.digitize(codes[:, j], edges) - 1)  # disentanglement_lib
    expected = [mutual_info_score(labels, bins[:, j]) for j in range(3)]
    np.testing.assert_allclose(scores.mutual_information(bins, labels), expected, rtol=1e-10)


def test_sap_hand_computed_continuous():
    # r^2(z0, y) = 6.5^2 / (8.75 * 5) = 0.965714; r^2(z1, y) = 1 / 5 = 0.2; SAP = 0.765714.
    codes = np.array([[1.0, 1.0], [2.0, 0.0], [3.0, 1.0], [5.0, 0.0]])
    factor = np.array([1.0, 2.0, 3.0, 4.0])
    result = scores.sap_score(codes, factor, discrete=False, test_mask=np.array([False, False, False, True]))
    np.testing.assert_allclose(result["score_matrix"][:, 0], [42.25 / 43.75, 0.2])
    assert result["sap"] == pytest.approx(42.25 / 43.75 - 0.2)


def test_sap_hand_computed_discrete():
    # Training means 0, 1, 2; test codes (0.1, 1.6, 1.9, 0.4) -> predictions (0, 2, 2, 0) for labels
    # (0, 1, 2, 1): recalls 1, 0, 1, balanced accuracy 2/3, adjusted (2/3 - 1/3) / (2/3) = 0.5.
    informative = np.array([0.0, 0.0, 1.0, 1.0, 2.0, 2.0, 0.1, 1.6, 1.9, 0.4])
    codes = np.stack([informative, np.ones(10)], axis=1)  # second dimension dead: score 0
    labels = np.array([0, 0, 1, 1, 2, 2, 0, 1, 2, 1])
    test_mask = np.arange(10) >= 6
    result = scores.sap_score(codes, labels, discrete=True, test_mask=test_mask)
    np.testing.assert_allclose(result["score_matrix"][:, 0], [0.5, 0.0])
    assert result["sap"] == pytest.approx(0.5)


def test_non_finite_codes_give_nan_not_a_dropped_value():
    factors, discrete = independent_factors(200)
    codes = factors.copy()
    codes[5, 2] = np.nan
    assert math.isnan(scores.sap_score(codes, factors, discrete)["sap"])
    assert math.isnan(scores.mig_score(codes, factors, discrete)["mig"])
    motion = np.random.default_rng(0).normal(size=(200, 3, 2))
    assert math.isnan(scores.correlation_scores(codes, motion)["mean_abs_correlation"])


# ---------------------------------------------------------------------------------------------------- correlation


def test_correlation_of_independent_and_identical_codes():
    rng = np.random.default_rng(4)
    content = rng.normal(size=(1000, 4))
    independent = scores.correlation_scores(content, rng.normal(size=(1000, 5, 3)))
    assert independent["mean_abs_correlation"] == pytest.approx(independent["correlation_chance"], rel=0.3)
    assert independent["max_abs_correlation"] < 0.1
    identical = scores.correlation_scores(content, np.repeat(content[:, None], 5, axis=1))
    assert identical["max_abs_correlation"] == pytest.approx(1.0)
    assert identical["mean_abs_correlation"] > 0.25  # the diagonal: 4 of 16 pairs at |r| = 1
    dead = scores.correlation_scores(np.ones((1000, 2)), rng.normal(size=(1000, 5, 3)))
    assert dead["max_abs_correlation"] == 0.0


# ---------------------------------------------------------------------------------------------------- probes


def test_ridge_probe_agrees_with_sklearn_ridgecv():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 6))
    y = np.stack([x[:, 0] * 2 + rng.normal(size=300), x[:, 1] - x[:, 2]], axis=1)
    weights, intercept = scores._ridge_loo(x, y, np.logspace(-3, 3, 7))
    reference = RidgeCV(alphas=np.logspace(-3, 3, 7)).fit(x, y)
    np.testing.assert_allclose(x @ weights + intercept, reference.predict(x), atol=1e-8)


def test_lda_covariance_uses_the_ledoit_wolf_shrinkage_of_sklearn(monkeypatch):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(80, 30)) @ rng.normal(size=(30, 30))
    captured = {}
    original_solve = np.linalg.solve

    def spy(covariance, right):
        captured["covariance"] = covariance
        return original_solve(covariance, right)

    monkeypatch.setattr(np.linalg, "solve", spy)
    scores._shrinkage_lda_log_proba(x, np.zeros(80, dtype=int), np.array([0]), x[:2])  # one class: S = cov
    standardised = (x - x.mean(axis=0)) / x.std(axis=0)
    covariance = standardised.T @ standardised / len(x)
    shrinkage = ledoit_wolf_shrinkage(standardised, assume_centered=True)
    target = np.trace(covariance) / 30
    expected = (1 - shrinkage) * covariance + (shrinkage * target + 1e-9) * np.eye(30)
    np.testing.assert_allclose(captured["covariance"], expected, atol=1e-10)


def test_probes_on_an_oracle_and_a_leaky_code(video_factors):
    labels, trajectory = video_factors
    content = content_factors(labels).astype(float)  # the oracle content code: the counts
    motion = motion_factors(trajectory)  # the oracle motion code: the motion factors
    oracle = code_metrics(content, motion, labels, trajectory)
    assert oracle["sap_content_content"] > 0.9 and oracle["sap_motion_motion"] > 0.99
    assert oracle["sap_content_motion"] < 0.1 and oracle["sap_motion_content"] < 0.1
    assert oracle["sap_disentanglement"] > 0.6 and oracle["mig_content"] > 0.6 and oracle["mig_motion"] > 0.3
    assert oracle["probe_content_from_content"] > 0.8
    assert oracle["probe_content_from_motion"] < oracle["probe_content_chance"] + 0.15
    assert oracle["probe_motion_from_motion"] > 0.99
    assert oracle["probe_motion_from_content"] < 0.1
    assert oracle["mean_abs_correlation"] < 3 * oracle["correlation_chance"]
    assert oracle["overall_disentanglement"] > 0.7
    # A content code that also carries the video's mean position leaks motion: the scores must see it.
    leaky_content = np.concatenate([content, motion.mean(axis=1)], axis=1)
    leaky = code_metrics(leaky_content, motion, labels, trajectory)
    assert leaky["sap_content_motion"] > oracle["sap_content_motion"] + 0.2
    assert leaky["probe_motion_from_content"] > oracle["probe_motion_from_content"] + 0.2
    assert leaky["max_abs_correlation"] > 0.5
    assert leaky["overall_disentanglement"] < oracle["overall_disentanglement"] - 0.1


def test_factors_are_order_free(video_factors):
    labels, trajectory = video_factors
    swapped_labels, swapped_paths = labels[:, ::-1], trajectory[:, :, ::-1]
    np.testing.assert_array_equal(content_factors(labels), content_factors(swapped_labels))
    np.testing.assert_allclose(motion_factors(trajectory), motion_factors(swapped_paths))
    assert content_factors(labels).sum(axis=1).tolist() == [2] * len(labels)


# ---------------------------------------------------------------------------------------------------- judge maths


def test_trajectory_correlation_and_inception_score():
    rng = np.random.default_rng(7)
    paths = rng.uniform(0, 30, size=(3, 5, 2, 2))
    assert trajectory_correlation(paths[:, :, ::-1], paths) == pytest.approx(1.0)  # order-free
    assert trajectory_correlation(2 * paths + 1, paths) == pytest.approx(1.0)  # affine maps keep r = 1
    # Unrelated paths: choosing each video's closer assignment biases r upwards (hence the reported
    # motion_correlation_chance), but it stays far from 1.
    unrelated = trajectory_correlation(rng.uniform(0, 30, size=(200, 5, 2, 2)), rng.uniform(0, 30, size=(200, 5, 2, 2)))
    assert 0.0 < unrelated < 0.3
    assert math.isnan(trajectory_correlation(np.zeros_like(paths), paths))
    confident = scores.inception_score(np.eye(10))
    assert confident["inception_score"] == pytest.approx(10.0)
    assert confident["entropy_conditional"] == pytest.approx(0.0)
    assert confident["entropy_marginal"] == pytest.approx(math.log(10))
    assert scores.inception_score(np.tile(np.eye(10)[3], (5, 1)))["inception_score"] == pytest.approx(1.0)


def test_swap_fidelity_takes_the_best_digit_assignment():
    dataset = MovingMNIST("test", 4)
    factors = dataset.factors(np.arange(4))
    images = dataset.digit_images(factors["digit_ids"])
    paths = torch.from_numpy(factors["trajectory"])
    ideal_swapped_slots = render_digits(images[:, [1, 0]], paths, 64)  # A's digits on B's paths, other order
    psnr, ssim = swap_fidelity(ideal_swapped_slots, images, paths, 64)
    assert torch.isinf(psnr).all() and torch.allclose(ssim, torch.ones(4))
    psnr_blank, _ = swap_fidelity(torch.zeros_like(ideal_swapped_slots), images, paths, 64)
    assert torch.isfinite(psnr_blank).all() and (psnr_blank < 30).all()


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
    """Oracle judges with the interface of :class:`evaluation.judges.Judges`: ``read`` and per-digit
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


def test_auto_judges_come_from_evaluation_judges(test_loader, monkeypatch):
    world = OracleWorld(test_loader.dataset)
    for batch in test_loader:
        world.render(batch["digit_ids"], batch["trajectory"])
    calls = []

    def get_judges(config, device, digits):
        calls.append((config, device, digits))
        return OracleJudges(world)

    monkeypatch.setattr(judges_module, "get_judges", get_judges)
    results = compute_all_disentanglement_metrics(OracleModel(world), test_loader, "cpu", max_samples=12)
    # The judges are those of the loader's own video config and digit set (embedded or official files).
    assert calls == [(test_loader.dataset.config, torch.device("cpu"), test_loader.dataset.digits)]
    assert results["content_preservation"] == 1.0


def test_a_loader_without_factors_is_refused():
    loader = [{"video": torch.zeros(4, FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)}]
    with pytest.raises(ValueError, match="ground-truth factors"):
        compute_all_disentanglement_metrics(nn.Identity(), loader, "cpu", judges=None)
