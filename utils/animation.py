"""Animations of videos: looping GIFs, each with an MP4 beside it where ``imageio-ffmpeg`` is installed.

Pillow only (plus the optional ``imageio-ffmpeg`` package, which bundles an ffmpeg binary, for the MP4s).
:func:`save_video_gif` writes one or several videos side by side, each under its label, with the frame
number on top; :func:`write_gif` and :func:`captioned` are the building blocks other animated figures
(the swap matrix of :mod:`evaluation.reporting.figures`) use. Videos are read as in :mod:`utils.visualization`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from utils.atomic import atomic_output, atomic_write
from utils.visualization import check_positive, named_videos

# ----------------------------------------------------------------------------------------------------
# Frames and captions


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits in ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..." if text else ""


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def captioned(image: np.ndarray, caption: str, scale: int) -> Image.Image:
    """A montage upscaled nearest-neighbour, under a one-line caption bar."""
    pixels = np.kron(_to_uint8(image), np.ones((scale, scale), dtype=np.uint8))
    font_size = max(10, 5 * scale)
    bar = font_size + 6
    canvas = Image.new("L", (pixels.shape[1], pixels.shape[0] + bar), color=40)
    canvas.paste(Image.fromarray(pixels, mode="L"), (0, bar))
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    draw.text((3, 2), _fit_text(draw, caption, font, pixels.shape[1] - 6), fill=255, font=font)
    return canvas


# ----------------------------------------------------------------------------------------------------
# Writers: GIF, and MP4 beside it


def _imageio_ffmpeg() -> Any:
    """The optional ``imageio_ffmpeg`` module (it bundles an ffmpeg binary), or ``None``."""
    try:
        import imageio_ffmpeg
    except ImportError:
        return None
    return imageio_ffmpeg


def mp4_twin(path: str | os.PathLike) -> Path | None:
    """The MP4 written beside a GIF, or ``None`` where ``imageio-ffmpeg`` is not installed."""
    path = Path(path)
    return path.with_suffix(".mp4") if path.suffix.lower() == ".gif" and _imageio_ffmpeg() else None


def _write_mp4(images: list[Image.Image], path: Path, fps: float) -> Path:
    """H.264 video of grayscale frames, padded with black to even sides (yuv420p needs them)."""
    ffmpeg = _imageio_ffmpeg()
    width = max(image.width for image in images)
    height = max(image.height for image in images)
    width, height = width + width % 2, height + height % 2
    with atomic_output(path) as temporary:  # ffmpeg writes to a path: the temporary one, then renamed
        writer = ffmpeg.write_frames(str(temporary), (width, height), pix_fmt_in="gray", fps=fps,
                                     macro_block_size=1, ffmpeg_log_level="error")  # it overwrites (-y)
        writer.send(None)  # start the encoder
        try:
            for image in images:
                canvas = Image.new("L", (width, height), color=0)
                canvas.paste(image.convert("L"), (0, 0))
                writer.send(np.ascontiguousarray(np.asarray(canvas, dtype=np.uint8)))
        finally:
            writer.close()
    return path


def write_gif(images: list[Image.Image], path: str | os.PathLike, fps: float) -> Path:
    """An animated GIF (looping), and its :func:`mp4_twin` where ``imageio-ffmpeg`` is installed, each
    written atomically (a crash or a full disk leaves the previous file, never half an animation)."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    path = Path(path)
    atomic_write(path, lambda handle: images[0].save(
        handle,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, int(round(1000 / fps))),
        loop=0,
        optimize=False,
    ))
    twin = mp4_twin(path)
    if twin is not None:
        _write_mp4(images, twin, fps)
    return path


# ----------------------------------------------------------------------------------------------------
# Videos side by side


def save_video_gif(
    videos: Mapping[str, Any] | Sequence[Any] | torch.Tensor | np.ndarray,
    path: str | os.PathLike,
    fps: float = 8,
    labels: Sequence[str] | None = None,
    scale: int = 2,
    columns: int | None = None,
) -> Path:
    """One or several videos side by side as an animated GIF, each under its label.

    A bar on top shows the frame number (``t=3/20``), so every GIF frame differs and none are merged.
    Videos shorter than the longest hold their last frame.

    Args:
        videos: a single video, a batch ``(B, T, 1, H, W)``, a list of videos or of ``(label, video)``
            pairs, or a dict ``{label: video}``.
        path: the ``.gif`` file to write.
        fps: frames per second.
        labels: one label per video (overrides the dict keys / pair labels).
        scale: integer nearest-neighbour upscaling factor.
        columns: videos per row of the grid (all in one row by default).

    Returns:
        ``path``.
    """
    named = named_videos(videos)
    check_positive("scale", scale)
    if labels is not None:
        if len(labels) != len(named):
            raise ValueError(f"got {len(labels)} labels for {len(named)} videos")
        named = [(str(label), frames) for label, (_, frames) in zip(labels, named, strict=True)]
    columns = len(named) if columns is None else columns
    check_positive("columns", columns)
    num_rows = math.ceil(len(named) / columns)
    num_frames = max(len(frames) for _, frames in named)
    tile_height = max(frames.shape[1] for _, frames in named) * scale
    tile_width = max(frames.shape[2] for _, frames in named) * scale
    font_size = max(10, 5 * scale)
    font = _font(font_size)
    label_height = font_size + 4 if any(label for label, _ in named) else 0
    caption_height = font_size + 6
    gap = 2 * scale
    width = columns * tile_width + (columns - 1) * gap
    height = caption_height + num_rows * (label_height + tile_height) + (num_rows - 1) * gap

    images = []
    for t in range(num_frames):
        canvas = Image.new("L", (width, height), color=40)
        draw = ImageDraw.Draw(canvas)
        draw.text((3, 2), f"t={t}/{num_frames}", fill=255, font=font)
        for number, (label, frames) in enumerate(named):
            row, col = divmod(number, columns)
            left = col * (tile_width + gap)
            top = caption_height + row * (label_height + tile_height + gap)
            if label:
                draw.text(
                    (left + 2, top + 1), _fit_text(draw, label, font, tile_width - 4), fill=220, font=font
                )
            frame = _to_uint8(frames[min(t, len(frames) - 1)])
            tile = Image.fromarray(frame, mode="L").resize(
                (frame.shape[1] * scale, frame.shape[0] * scale), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (left, top + label_height))
        images.append(canvas)
    return write_gif(images, path, fps)


__all__ = ["captioned", "mp4_twin", "save_video_gif", "write_gif"]
