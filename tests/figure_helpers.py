"""Inputs shared by the figure tests: tiny models and random videos, and a reader for the files written."""

from __future__ import annotations

import dataclasses

import torch
from PIL import Image

from models import MODELS, build_model

IMAGE_SIZE = 32
FRAMES = 6


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


def random_videos(batch: int = 3, frames: int = FRAMES, seed: int = 0) -> torch.Tensor:
    """Uniform noise videos ``(batch, frames, 1, IMAGE_SIZE, IMAGE_SIZE)``, seeded."""
    return torch.rand(batch, frames, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(seed))


def open_image(path) -> Image.Image:
    """The image or GIF at ``path``, fully read."""
    image = Image.open(path)
    image.load()
    return image
