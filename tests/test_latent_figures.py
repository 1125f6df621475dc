"""Tests of the figures that run a model: swap matrices and interpolations (tiny models, CPU)."""

from __future__ import annotations

import pytest
import torch

from evaluation.reporting.latent_figures import (
    interpolation_frames,
    save_interpolation_grid,
    save_swap_matrix,
    swap_grid,
)
from models import MODELS
from tests.figure_helpers import FRAMES, IMAGE_SIZE, open_image, random_videos, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


# ----------------------------------------------------------------------------------------------------
# Swaps


@pytest.mark.parametrize("name", list(MODELS))
def test_swap_grid_cell_is_the_models_swap(name):
    model = tiny_model(name)
    content, motion = random_videos(3, seed=1), random_videos(2, seed=2)
    grid = swap_grid(model, content, motion, chunk_size=4)  # chunks split the 6 pairs unevenly
    assert grid.shape == (3, 2, FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        for i in range(3):
            for j in range(2):
                expected = model.swap(content[i : i + 1], motion[j : j + 1])[0]
                torch.testing.assert_close(grid[i, j], expected, atol=1e-5, rtol=1e-4)


def test_swap_matrix_writes_png_and_gif(model, tmp_path):
    content, motion = random_videos(3, seed=1), random_videos(2, seed=2)
    path = save_swap_matrix(
        model, content, motion, tmp_path / "swap.png", frame_indices=[0, -1], gif_path=tmp_path / "swap.gif"
    )
    image = open_image(path)
    assert image.format == "PNG"
    assert image.width > image.height  # 3 columns of 2-frame strips by 4 rows
    gif = open_image(tmp_path / "swap.gif")
    assert gif.n_frames == FRAMES
    assert gif.height > gif.width  # (3 + 1) rows of frames by (2 + 1) columns, plus the caption
    with pytest.raises(ValueError, match="out of range"):
        save_swap_matrix(model, content, motion, tmp_path / "bad.png", frame_indices=[FRAMES])


# ----------------------------------------------------------------------------------------------------
# Interpolation


def test_interpolation_grid_one_or_both_factors(model, tmp_path):
    video_a, video_b = random_videos(2, seed=3)
    content = open_image(save_interpolation_grid(model, video_a, video_b, tmp_path / "c.png", steps=3))
    motion = open_image(
        save_interpolation_grid(model, video_a, video_b, tmp_path / "m.png", steps=3, factor="motion")
    )
    both = open_image(
        save_interpolation_grid(model, video_a, video_b, tmp_path / "b.png", steps=3, factor="both")
    )
    assert content.size == motion.size
    assert 1.0 < content.width / content.height < 2.0  # 5 rows (A, 3 steps, B) by 6 frames, plus labels
    assert 1.7 < both.height / content.height < 2.3
    with pytest.raises(ValueError, match="factor"):
        save_interpolation_grid(model, video_a, video_b, tmp_path / "x.png", factor="colour")


def test_interpolation_frames_start_at_the_reconstruction_of_a(model):
    video_a, video_b = random_videos(2, seed=4)
    frames = interpolation_frames(model, video_a, video_b, steps=4, factor="motion")
    assert frames.shape == (4, FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(frames[0], model.reconstruct(video_a[None])[0], atol=1e-5, rtol=1e-4)
