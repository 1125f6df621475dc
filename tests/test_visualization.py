"""Tests of the frame grids: each writes a readable file of the right format and shape (tiny, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.figure_helpers import FRAMES, open_image, random_videos
from utils.visualization import as_frames, save_frame_grid

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------
# Inputs


def test_as_frames_accepts_the_video_layouts_and_clips():
    video = torch.rand(FRAMES, 1, 8, 8)
    assert as_frames(video).shape == (FRAMES, 8, 8)
    assert as_frames(video[:, 0].numpy()).shape == (FRAMES, 8, 8)
    assert as_frames(video[None]).shape == (FRAMES, 8, 8)
    odd = np.array([[[np.nan, -1.0], [2.0, 0.5]]])
    assert as_frames(odd).tolist() == [[[0.0, 0.0], [1.0, 0.5]]]
    with pytest.raises(ValueError, match=r"\(T, 1, H, W\)"):
        as_frames(torch.rand(FRAMES, 3, 8, 8))


# ----------------------------------------------------------------------------------------------------
# Frame grids


def test_frame_grid_writes_a_png_one_column_per_frame(tmp_path):
    videos = random_videos(2)
    path = save_frame_grid(
        {"ground truth": videos[0], "reconstruction": videos[1]}, tmp_path / "sub" / "grid.png", title="t"
    )
    assert path == tmp_path / "sub" / "grid.png"
    image = open_image(path)
    assert image.format == "PNG"
    assert 2.0 < image.width / image.height < 4.5  # 6 frames by 2 rows, plus labels
    few = open_image(save_frame_grid(videos, tmp_path / "few.png", max_frames=2, every=2))
    assert few.width < image.width


def test_frame_grid_takes_lists_pairs_and_uneven_lengths(tmp_path):
    rows = [("long", random_videos(1, 6)[0]), ("short", random_videos(1, 3)[0, :, 0].numpy())]
    image = open_image(save_frame_grid(rows, tmp_path / "uneven.png", group_size=1))
    assert image.width > image.height
    with pytest.raises(ValueError, match="every"):
        save_frame_grid(rows, tmp_path / "bad.png", every=0)
