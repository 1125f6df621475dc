"""Order-free scores on hand-made cases: digits matched as multisets, trajectories by their best assignment."""

from __future__ import annotations

import math

import pytest
import torch

from evaluation.judges.order_free import align_trajectories, digit_accuracy, label_counts, trajectory_error
from evaluation.judges.tally import JudgedTally, close_start

# ----------------------------------------------------------------------------------------------------
# Order-free scores


def test_digit_accuracy_matches_multisets():
    true = torch.tensor([[3, 7], [3, 7], [3, 7], [3, 3], [1, 2]])
    pred = torch.tensor([[7, 3], [3, 7], [3, 3], [3, 7], [5, 6]])
    assert digit_accuracy(pred, true).tolist() == [1.0, 1.0, 0.5, 0.5, 0.0]
    three = torch.tensor([[4, 4, 9]])
    assert digit_accuracy(torch.tensor([[9, 4, 4]]), three).item() == 1.0
    assert digit_accuracy(torch.tensor([[4, 9, 9]]), three).item() == pytest.approx(2 / 3)


def test_label_counts_sum_to_the_number_of_digits():
    counts = label_counts(torch.tensor([[3, 3, 0], [9, 1, 2]]))
    assert counts.shape == (2, 10)
    assert counts[0, 3] == 2 and counts[0, 0] == 1 and counts.sum(dim=1).tolist() == [3, 3]


def test_trajectory_error_takes_the_best_whole_trajectory_assignment():
    generator = torch.Generator().manual_seed(0)
    true = 30 * torch.rand(4, 5, 3, 2, generator=generator)
    permuted = true[:, :, [2, 0, 1]]
    assert torch.allclose(trajectory_error(permuted, true), torch.zeros(4), atol=1e-6)
    assert torch.allclose(align_trajectories(permuted, true), true)
    shifted = true + torch.tensor([3.0, 4.0])  # every position 5 px off
    assert torch.allclose(trajectory_error(shifted[:, :, [1, 2, 0]], true), torch.full((4,), 5.0), atol=1e-5)


def test_trajectory_error_penalises_identity_swaps_within_a_video():
    # Two digits 10 px apart; the prediction swaps them after frame 1 of 4.
    true = torch.tensor([[[[0.0, 0.0], [10.0, 0.0]]] * 4])  # (1, 4, 2, 2)
    swapped = true.clone()
    swapped[:, 2:] = true[:, 2:, [1, 0]]
    # Best assignment keeps frames 0-1 right and frames 2-3 10 px off for both digits: mean 5 px.
    assert trajectory_error(swapped, true).item() == pytest.approx(5.0)


def test_scores_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        digit_accuracy(torch.zeros(2, 2, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, T, D, 2\)"):
        trajectory_error(torch.zeros(1, 3, 2, 2), torch.zeros(1, 4, 2, 2))


def test_close_start_and_its_judged_means_agree_with_a_loop():
    generator = torch.Generator().manual_seed(3)
    trajectory = torch.rand(40, 5, 3, 2, generator=generator) * 40  # (B, T, D, 2) pixels
    trajectory[0, 0] = torch.tensor([[0.0, 0.0], [6.0, 8.0], [30.0, 30.0]])  # exactly 10 px apart: close
    trajectory[1, 0] = torch.tensor([[0.0, 0.0], [6.0, 8.1], [30.0, 30.0]])  # just over: not close
    expected = []
    for video in trajectory[:, 0].tolist():
        distances = [math.dist(a, b) for i, a in enumerate(video) for b in video[i + 1:]]
        expected.append(min(distances) <= 10.0)
    close = close_start(trajectory)
    assert close.tolist() == expected and close[0] and not close[1]
    assert 0 < close.sum() < len(close)
    assert not close_start(trajectory[:, :, :1]).any()  # one digit: never close

    class Judges:  # reads every video's digits as [1, 2, 3]
        def read(self, video):
            return torch.tensor([[1, 2, 3]]).expand(len(video), -1), torch.zeros(len(video), 5, 3, 2)

    class Model:
        def combine(self, content, motion):
            return content

    labels = torch.randint(0, 4, (40, 3), generator=generator)
    tally = JudgedTally(Judges(), Model(), generator)
    tally.can_resample = tally.can_score_samples = False
    motion = torch.zeros(40, 5, 1)
    own = {"labels": labels, "trajectory": trajectory}
    partner = {"labels": labels.roll(1, 0), "trajectory": trajectory.roll(1, 0)}
    tally.update(torch.zeros(40, 1), torch.zeros(40, 1), motion, torch.zeros(40, 1), own, partner)
    results = tally.results([])
    kept = [digit_accuracy(torch.tensor([[1, 2, 3]]), labels[i:i + 1]).item() for i in range(40)]
    reference = sum(k for k, c in zip(kept, expected, strict=True) if c) / sum(expected)
    assert results["content_preservation_close_start"] == pytest.approx(reference)
    assert results["recon_content_accuracy_close_start"] == pytest.approx(reference)
    assert results["close_start_share"] == pytest.approx(sum(expected) / 40)
