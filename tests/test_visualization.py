"""Tests of the figures and GIFs: each writes a readable file of the right format and shape (tiny, CPU)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from models import MODELS, build_model
from utils import visualization
from utils.visualization import (
    as_frames,
    interpolation_frames,
    plot_training_curves,
    save_frame_grid,
    save_interpolation_grid,
    save_swap_matrix,
    save_video_gif,
    swap_grid,
)

IMAGE_SIZE = 32
FRAMES = 6


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(name: str = "disentangled"):
    """A tiny model of any registered kind (sizes read off its config fields)."""
    fields = {"image_size": IMAGE_SIZE, "width": 8}
    for field in dataclasses.fields(MODELS[name].config_class):
        if field.name.endswith("_dim"):
            fields[field.name] = 8
        elif field.name.endswith("_hidden"):
            fields[field.name] = 16
    torch.manual_seed(0)
    return build_model(name, fields).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def random_videos(batch: int = 3, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, frames, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def open_image(path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


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


# ----------------------------------------------------------------------------------------------------
# Training curves


CSV = """epoch,step,train_loss,train_recon,train_kl,train_kl_content,val_loss,val_recon,val_kl,lr
1,10,500.0,400.0,100.0,60.0,450.0,380.0,90.0,0.001
2,20,300.0,250.0,50.0,30.0,310.0,260.0,,0.0005
3,30,250.0,210.0,40.0,25.0,nan,250.0,38.0,0.0001
"""


def test_training_curves_from_one_or_several_csvs(tmp_path):
    run = tmp_path / "run_a" / "metrics.csv"
    run.parent.mkdir()
    run.write_text(CSV)
    image = open_image(plot_training_curves(run, tmp_path / "curves.png"))
    assert image.format == "PNG"
    assert image.width > image.height  # loss, recon, kl / kl_content, lr: 2 rows of 3
    other = tmp_path / "other.csv"
    other.write_text(CSV.replace("500.0", "600.0"))
    overlaid = plot_training_curves({"a": run, "b": other}, tmp_path / "figs" / "both.pdf")
    assert overlaid.read_bytes().startswith(b"%PDF")


def test_training_curves_for_a_paper(tmp_path, monkeypatch):
    """Log axes in nats per video, the KL terms on one panel, no learning-rate panel, one legend, and a PDF."""
    figures = []
    save = visualization._save_figure
    monkeypatch.setattr(visualization, "_save_figure", lambda figure, *a, **k: figures.append(figure) or save(figure, *a, **k))
    run = tmp_path / "run" / "metrics.csv"
    run.parent.mkdir()
    run.write_text(CSV.replace("train_kl_content,", "train_kl_content,train_kl_motion,").replace(
        "100.0,60.0,", "100.0,60.0,40.0,").replace("50.0,30.0,", "50.0,30.0,20.0,").replace("40.0,25.0,", "40.0,25.0,15.0,"))
    path = plot_training_curves({"Disentangled VAE": run, "Baseline VAE": tmp_path / "run" / "metrics.csv"},
                                tmp_path / "curves.png")
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["total loss", "reconstruction", "KL terms"]
    assert {ax.get_yscale() for ax in axes} == {"log"} and {ax.get_ylabel() for ax in axes} == {"nats per video"}
    assert all(ax.get_legend() is None for ax in axes) and len(figures[0].legends) == 1
    labels = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert labels == ["Disentangled VAE", "Baseline VAE", "train", "validation", "KL content", "KL motion"]
    assert len(axes[2].get_lines()) == 2 * 2  # two runs, two terms (this CSV validates the total KL only)
    assert axes[0].get_xlabel() == "optimizer step"


def test_gifs_get_an_mp4_only_where_imageio_ffmpeg_is_installed(tmp_path, monkeypatch):
    video = np.random.default_rng(0).random((FRAMES, 1, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    monkeypatch.setattr(visualization, "_imageio_ffmpeg", lambda: None)
    save_video_gif(video, tmp_path / "a.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif"]
    monkeypatch.undo()
    pytest.importorskip("imageio_ffmpeg")
    save_video_gif([video, video], tmp_path / "b.gif", labels=["x", "y"])
    assert (tmp_path / "b.mp4").stat().st_size > 0


def test_training_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(ValueError, match="train_"):
        plot_training_curves(empty, tmp_path / "x.png")
