"""Moving MNIST with ground-truth factors, generated in batches and deterministically.

The protocol (Srivastava et al., 2015) by default: a 64x64 canvas, 2 MNIST digits of 28x28, 20 frames;
each digit starts at a uniform random position, moves in a straight line at a constant speed in a
uniform random direction and bounces off the walls; overlapping digits are combined by ``max``.

**Determinism.** Video ``i`` of a split with seed ``s`` is a pure function of ``(split, s, i)``: its random
draws come from a counter-based hash of those three numbers (SplitMix64), never from a shared random
stream, so the pixels and factors do not depend on batch size, worker count or order. Validation and
test sets are therefore fixed. The training loader draws *fresh* videos every epoch by default (epoch
``e`` uses indices ``e * N ... (e + 1) * N - 1``): the digit images still come from the training pool,
but no digit pairing or trajectory is seen twice, which fights over-fitting at no cost since videos
are generated on the fly. ``fresh_train=False`` repeats the same ``N`` videos every epoch.

**Ground-truth factors** travel with every video (``B`` videos, ``T`` frames, ``D`` digits):

=================== ============== ======= ==========================================================
key                 shape          kind    meaning
=================== ============== ======= ==========================================================
``video``           (B, T, 1, H, W) -      float32 frames in [0, 1]
``index``           (B,)           -       the video's index in its split
``labels``          (B, D)         content digit classes 0-9
``digit_ids``       (B, D)         content index of each digit image in ``DigitSet.images``
``start_positions`` (B, D, 2)      motion  top-left corner (x, y) of each digit at frame 0, pixels
``trajectory``      (B, T, D, 2)   motion  top-left corner (x, y) of each digit at every frame, pixels
``velocity``        (B, T, D, 2)   motion  (dx, dy) per frame at every frame (sign flips at bounces)
``direction``       (B, D)         motion  angle of the initial velocity, radians in [0, 2 pi)
``speed``           (B, D)         motion  pixels per frame (constant: bounces keep the speed)
=================== ============== ======= ==========================================================

Positions are continuous; a digit is drawn at the rounded position (``render_digits``), so re-rendering
the digit images along ``trajectory`` reproduces the frames exactly. ``render_digits`` is public: it
also renders the ideal result of a content/motion swap (digits of one video along another's paths).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import MovingMNISTConfig
from .mnist import SPLITS, DigitSet, load_digits
from .render import bounce_trajectories, render_digits, resize_digits, uniform_draws
from .video_file import VideoFileDataset, read_video_file


class MovingMNIST(Dataset):
    """One split of Moving MNIST, generated on the fly from the split's digit pool.

    ``dataset[i]`` returns one video's dict (no batch axis). ``dataset[[i, j, ...]]`` (any sequence of
    indices) returns a whole batch, rendered in one vectorised call: the loaders use this. Every
    non-negative index is a valid video (``generate`` accepts indices past ``len``: fresh training
    epochs use them); ``len`` is the number of videos one epoch visits.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``: which digit pool the videos draw from.
        num_videos: videos per epoch.
        config: how videos look (canvas, digits, frames, speeds).
        seed: experiment seed; video ``i`` is a pure function of ``(split, seed, i)``.
        digits: a DigitSet to draw from; loaded from ``mnist_root`` when None.
        mnist_root: folder of the official MNIST files; None uses the embedded 5,000 digits.
    """

    def __init__(
        self,
        split: str = "train",
        num_videos: int = 10_000,
        config: MovingMNISTConfig | None = None,
        seed: int = 42,
        digits: DigitSet | None = None,
        mnist_root: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if isinstance(num_videos, bool) or not isinstance(num_videos, (int, np.integer)) or num_videos <= 0:
            raise ValueError(f"num_videos must be a positive integer, got {num_videos!r}")
        self.split = split
        self.num_videos = int(num_videos)
        self.config = config if config is not None else MovingMNISTConfig()
        self.seed = int(seed)
        self.digits = digits if digits is not None else load_digits(mnist_root)
        self.pool = self.digits.pool(split)
        self._images = torch.from_numpy(resize_digits(self.digits.images, self.config.digit_size))

    def __len__(self) -> int:
        return self.num_videos

    def with_frames(self, num_frames: int, num_videos: int | None = None) -> MovingMNIST:
        """The same videos (split, seed and digits) rendered with ``num_frames`` frames: video i's first frames
        are this dataset's video i's, and with more frames its digits move on. ``num_videos`` defaults to this
        dataset's."""
        return MovingMNIST(self.split, self.num_videos if num_videos is None else num_videos,
                           dataclasses.replace(self.config, num_frames=num_frames), seed=self.seed, digits=self.digits)

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, torch.Tensor]:
        if isinstance(index, (int, np.integer)):
            if not 0 <= index < self.num_videos:
                raise IndexError(f"video index {index} out of range for {self.num_videos} videos")
            return {key: value[0] for key, value in self.generate([int(index)]).items()}
        return self.generate(index)

    def factors(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Ground-truth factors of the given videos (no pixels), as numpy arrays."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and indices.min() < 0:
            raise ValueError(f"video indices must be non-negative, got {indices.min()}")
        cfg = self.config
        num_digits = cfg.num_digits
        # Per digit: pool pick, x, y, direction, speed.
        draws = uniform_draws(self.seed, self.split, indices, 5 * num_digits).reshape(-1, num_digits, 5)
        picks = np.minimum((draws[..., 0] * len(self.pool)).astype(np.int64), len(self.pool) - 1)
        digit_ids = self.pool[picks]
        start_positions = draws[..., 1:3] * cfg.travel
        direction = draws[..., 3] * 2.0 * math.pi
        speed = cfg.min_speed + draws[..., 4] * (cfg.max_speed - cfg.min_speed)
        initial_velocity = np.stack([np.cos(direction), np.sin(direction)], axis=-1) * speed[..., None]
        trajectory, velocity = bounce_trajectories(start_positions, initial_velocity, cfg.num_frames, cfg.travel)
        return {
            "index": indices,
            "labels": self.digits.labels[digit_ids],
            "digit_ids": digit_ids,
            "start_positions": start_positions.astype(np.float32),
            "trajectory": trajectory.transpose(1, 0, 2, 3).astype(np.float32),  # (B, T, D, 2)
            "velocity": velocity.transpose(1, 0, 2, 3).astype(np.float32),
            "direction": direction.astype(np.float32),
            "speed": speed.astype(np.float32),
        }

    def digit_images(self, digit_ids: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The (resized) uint8 images of the given digit ids, shape ``digit_ids.shape + (s, s)``."""
        return self._images[torch.as_tensor(np.asarray(digit_ids), dtype=torch.long)]

    def generate(
        self, indices: Sequence[int] | np.ndarray | torch.Tensor, device: torch.device | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Videos and factors of the given indices, as one batch dict of tensors (see module docs).

        Args:
            indices: non-negative video indices (any, also past ``len``).
            device: where to render; the CPU by default.
        """
        factors = self.factors(indices)
        batch = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in factors.items()}
        images = self.digit_images(factors["digit_ids"])
        if device is not None:
            images = images.to(device)
        batch["video"] = render_digits(images, batch["trajectory"], self.config.image_size)
        return batch


class StandardMovingMNIST(VideoFileDataset):
    """The standard Moving MNIST test file ``mnist_test_seq.npy`` (Srivastava et al., 2015), every video in
    file order.

    uint8 of shape ``(T, N, H, W)`` (``(20, 10000, 64, 64)`` for the published file), memory-mapped and checked
    by the one reader of video arrays (:func:`data.video_file.read_video_file`, which also accepts the other
    layouts). It has no factors: batches hold ``video`` and ``index`` only. Use it for reconstruction metrics
    that are comparable with published numbers.

    Args:
        path: the ``.npy`` file.
        layout: its layout; None: the standard file's time-first ``TNHW`` for a 4-D array.
    """

    def __init__(self, path: str, layout: str | None = None) -> None:
        super().__init__(read_video_file(path, layout, default_layout="TNHW"))
        self.path = path
        self.array = self.videos.array
