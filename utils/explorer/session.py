"""What the explorer computes: the codes of the grid videos, cached once, and the frames of one request.

A request names where the content code comes from and where the motion code comes from, each as a
:class:`Source` (a grid video ``video:I`` or a draw from the prior ``prior:K``), plus optional second sources
and weights that interpolate each code separately (``content = lerp(content_from, content_to, t)``). The
frames are ``model.combine(content, motion)``: with ``content_to``/``motion_to`` unset and two grid videos
this is ``model.swap(content_video, motion_video)``, from codes encoded in one batch of the grid (so equal to
float rounding; the tests allow one step of the uint8 pixels).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from models import VideoVAE

KINDS = ("video", "prior")
FACTORS = ("content", "motion")
PRIOR_CACHE = 64  # prior draws kept (each is one content and one motion code)


class RequestError(ValueError):
    """A request the explorer cannot answer (the server turns it into HTTP 400 with the message)."""


@dataclass(frozen=True)
class Source:
    """Where a code comes from: ``kind`` is ``"video"`` (``index`` into the grid) or ``"prior"`` (draw number
    ``index``, seeded from the session's seed)."""

    kind: str
    index: int

    @classmethod
    def parse(cls, name: str, text: str, num_videos: int) -> Source:
        """Parse ``video:I`` (0 <= I < num_videos) or ``prior:K`` (K >= 0); a bare ``I`` is ``video:I``."""
        kind, _, number = text.rpartition(":")
        kind = kind or "video"
        if kind not in KINDS or not (number.isascii() and number.isdigit()) or len(number) > 9:
            raise RequestError(f"{name} must be video:I or prior:K with integers I, K >= 0, got {text!r}")
        index = int(number)
        if kind == "video" and index >= num_videos:
            raise RequestError(f"{name}: unknown video {index}; the grid has videos 0 to {num_videos - 1}")
        return cls(kind, index)

    def __str__(self) -> str:
        return f"{self.kind}:{self.index}"


@dataclass(frozen=True)
class SwapRequest:
    """The codes of one request (see the module docstring); ``*_to`` None means no interpolation."""

    content: Source
    motion: Source
    content_to: Source | None = None
    motion_to: Source | None = None
    content_t: float = 0.0
    motion_t: float = 0.0

    @classmethod
    def parse(cls, query: Mapping[str, list[str]], num_videos: int) -> SwapRequest:
        """A request from a parsed query string (``urllib.parse.parse_qs``); raises :class:`RequestError`."""
        known = {"content", "motion", "content_to", "motion_to", "content_t", "motion_t"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise RequestError(f"unknown parameter(s) {unknown}; known: {sorted(known)}")
        values = {}
        for key, items in query.items():
            if len(items) != 1:
                raise RequestError(f"parameter {key} given {len(items)} times; give it once")
            values[key] = items[0]
        for key in ("content", "motion"):
            if key not in values:
                raise RequestError(f"missing parameter {key} (video:I or prior:K)")
        fields = {key: Source.parse(key, values[key], num_videos) for key in values if not key.endswith("_t")}
        for key in ("content_t", "motion_t"):
            if key in values:
                try:
                    weight = float(values[key])
                except ValueError:
                    raise RequestError(f"{key} must be a number in [0, 1], got {values[key]!r}") from None
                if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
                    raise RequestError(f"{key} must be a number in [0, 1], got {values[key]!r}")
                fields[key] = weight
        return cls(**fields)


def to_uint8(frames: Tensor) -> np.ndarray:
    """Probabilities ``(T, C, H, W)`` in [0, 1] as ``uint8`` pixels ``(T, C, H, W)`` (rounded)."""
    return frames.detach().float().mul(255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def sprite_png(pixels: np.ndarray) -> bytes:
    """The frames ``(T, C, H, W)`` uint8 (C = 1 or 3) side by side in one PNG, ``H x (T * W)``."""
    frames, channels, height, width = pixels.shape
    strip = pixels.transpose(2, 0, 3, 1).reshape(height, frames * width, channels)  # (H, T * W, C)
    image = Image.fromarray(strip[..., 0] if channels == 1 else strip, "L" if channels == 1 else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class ExplorerSession:
    """A model and its grid of test videos, encoded once.

    Args:
        model: any model of the registry (in eval mode).
        videos: ``(N, T, C, H, W)`` test videos in [0, 1] on the model's device.
        seed: seed of the prior draws (draw K uses ``seed + K``).
    """

    def __init__(self, model: VideoVAE, videos: Tensor, seed: int = 0) -> None:
        self.model, self.videos, self.seed = model, videos, seed
        self.device = videos.device
        with torch.no_grad():
            self.content, self.motion = model.split(videos)  # (N, Dc), (N, T, Dm)
        self._prior: dict[int, tuple[Tensor, Tensor]] = {}

    @property
    def num_videos(self) -> int:
        return self.videos.shape[0]

    @property
    def num_frames(self) -> int:
        return self.videos.shape[1]

    @property
    def explicit_split(self) -> bool:
        """Whether the model's codes are a content and a motion code (else the implicit protocol of
        :mod:`models.base` splits its per-frame codes)."""
        return set(self.model.latent_layout) == set(FACTORS)

    def describe(self) -> dict:
        """What the page says about the model and its grid."""
        model = self.model
        if self.explicit_split:
            note = (f"{model.display_name}: an explicit content code ({model.content_dim} numbers per video) and a "
                    f"motion code ({model.motion_dim} per frame).")
        else:
            note = (f"{model.display_name} has no content/motion split: its swap uses the implicit one of "
                    "models/base.py, content = the time-average of its per-frame codes, motion = each frame's "
                    "deviation from it.")
        prior = model.prior_description()
        return {"model": model.display_name, "explicit_split": self.explicit_split, "note": note,
                "prior": f"content: {prior['content']}; motion: {prior['motion']}", "frames": self.num_frames,
                "size": list(self.videos.shape[-2:]), "videos": self.num_videos}

    def video_pixels(self, index: int) -> np.ndarray:
        """Grid video ``index`` as uint8 ``(T, C, H, W)``."""
        return to_uint8(self.videos[index])

    def _prior_codes(self, draw: int) -> tuple[Tensor, Tensor]:
        if draw not in self._prior:
            if len(self._prior) >= PRIOR_CACHE:
                self._prior.pop(next(iter(self._prior)))
            generator = torch.Generator(device=self.device).manual_seed(self.seed + draw)
            with torch.no_grad():
                content, motion = self.model.sample_factors(1, self.num_frames, generator)
            self._prior[draw] = (content[0], motion[0])
        return self._prior[draw]

    def code(self, factor: str, source: Source) -> Tensor:
        """The content ``(Dc,)`` or motion ``(T, Dm)`` code of a source."""
        position = FACTORS.index(factor)
        if source.kind == "video":
            return (self.content, self.motion)[position][source.index]
        return self._prior_codes(source.index)[position]

    def _factor(self, factor: str, start: Source, end: Source | None, weight: float) -> Tensor:
        code = self.code(factor, start)
        if end is None or weight == 0.0:
            return code
        return torch.lerp(code, self.code(factor, end), weight)

    def render(self, request: SwapRequest) -> tuple[np.ndarray, float]:
        """The frames of a request as uint8 ``(T, C, H, W)``, and the seconds the model took."""
        started = time.perf_counter()
        with torch.no_grad():
            content = self._factor("content", request.content, request.content_to, request.content_t)
            motion = self._factor("motion", request.motion, request.motion_to, request.motion_t)
            frames = self.model.combine(content[None], motion[None])[0]  # (T, C, H, W)
        pixels = to_uint8(frames)
        return pixels, time.perf_counter() - started
