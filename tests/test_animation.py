"""Tests of the GIFs (and their MP4 twins): one frame per time step, the right size (tiny, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.figure_helpers import FRAMES, IMAGE_SIZE, open_image, random_videos
from utils import animation
from utils.animation import save_video_gif

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------
# GIFs


def test_video_gif_has_one_frame_per_time_step_and_is_upscaled(tmp_path):
    video = random_videos(1)[0]
    single = open_image(save_video_gif(video, tmp_path / "one.gif", scale=2))
    assert single.format == "GIF"
    assert single.n_frames == FRAMES
    assert single.width == 2 * IMAGE_SIZE
    pair = open_image(save_video_gif({"a": video, "b": video}, tmp_path / "two.gif", scale=3, fps=4))
    assert pair.n_frames == FRAMES
    assert pair.width == 2 * 3 * IMAGE_SIZE + 2 * 3
    # Identical frames are not merged: the frame counter keeps them apart.
    still = open_image(save_video_gif(torch.zeros(FRAMES, 1, 8, 8), tmp_path / "still.gif"))
    assert still.n_frames == FRAMES


def test_video_gif_grid_and_uneven_lengths(tmp_path):
    videos = [random_videos(1, 6)[0], random_videos(1, 4)[0], random_videos(1, 6)[0], random_videos(1, 6)[0]]
    gif = open_image(save_video_gif(videos, tmp_path / "grid.gif", labels=list("abcd"), columns=2, scale=1))
    assert gif.n_frames == 6
    assert gif.width == 2 * IMAGE_SIZE + 2
    with pytest.raises(ValueError, match="labels"):
        save_video_gif(videos, tmp_path / "bad.gif", labels=["a"])


def test_gifs_get_an_mp4_only_where_imageio_ffmpeg_is_installed(tmp_path, monkeypatch):
    video = np.random.default_rng(0).random((FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    monkeypatch.setattr(animation, "_imageio_ffmpeg", lambda: None)
    save_video_gif(video, tmp_path / "a.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]
    monkeypatch.undo()
    pytest.importorskip("imageio_ffmpeg")
    save_video_gif([video, video], tmp_path / "b.gif", labels=["x", "y"])
    assert (tmp_path / "b.mp4").stat().st_size > 0
