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

import math
import signal
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from .mnist import DIGIT_SIZE, SPLITS, DigitSet, load_digits

CONTENT_FACTORS = ("labels", "digit_ids")
MOTION_FACTORS = ("start_positions", "trajectory", "velocity", "direction", "speed")
_SPLIT_IDS = {split: number for number, split in enumerate(SPLITS)}


@dataclass(frozen=True)
class MovingMNISTConfig:
    """How videos look. Defaults are the standard Moving MNIST protocol.

    Attributes:
        image_size: side of the square canvas in pixels.
        digit_size: side of each digit in pixels (MNIST digits are resized from 28 when different).
        num_digits: digits per video.
        num_frames: frames per video (at least 2).
        min_speed: smallest speed in pixels per frame.
        max_speed: largest speed in pixels per frame.
    """

    image_size: int = 64
    digit_size: int = DIGIT_SIZE
    num_digits: int = 2
    num_frames: int = 20
    min_speed: float = 2.0
    max_speed: float = 5.0

    def __post_init__(self) -> None:
        for name in ("image_size", "digit_size", "num_digits", "num_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.digit_size > self.image_size:
            raise ValueError(
                f"digit_size {self.digit_size} is larger than the canvas (image_size {self.image_size}); "
                "use a larger image_size or a smaller digit_size"
            )
        if self.num_frames < 2:
            raise ValueError(f"num_frames must be at least 2 for a video to have motion, got {self.num_frames}")
        if not (0 <= self.min_speed <= self.max_speed) or not math.isfinite(self.max_speed):
            raise ValueError(
                f"speeds must satisfy 0 <= min_speed <= max_speed < inf, got {self.min_speed}, {self.max_speed}"
            )

    @property
    def travel(self) -> int:
        """How far a digit's top-left corner can move: ``image_size - digit_size``."""
        return self.image_size - self.digit_size


# ----------------------------------------------------------------------------------------------------
# Counter-based randomness: uniform draws as a pure function of (seed, split, index, draw number)

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al., 2014), elementwise on uint64 (wraps mod 2**64)."""
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform_draws(seed: int, split: str, indices: np.ndarray, num_draws: int) -> np.ndarray:
    """``(len(indices), num_draws)`` float64 uniforms in [0, 1), a pure function of each argument tuple."""
    with np.errstate(over="ignore"):
        key = _splitmix64(np.full(1, seed & 0xFFFFFFFFFFFFFFFF, dtype=np.uint64))
        key = _splitmix64(key ^ np.uint64(_SPLIT_IDS[split]))
        per_video = _splitmix64(key ^ indices.astype(np.uint64))[:, None]
        draws = _splitmix64(per_video + np.arange(1, num_draws + 1, dtype=np.uint64)[None, :])
    return (draws >> np.uint64(11)).astype(np.float64) * 2.0**-53


# ----------------------------------------------------------------------------------------------------
# Trajectories and rendering


def bounce_trajectories(
    start_positions: np.ndarray, velocities: np.ndarray, num_frames: int, travel: float
) -> tuple[np.ndarray, np.ndarray]:
    """Straight-line motion with elastic bounces, in closed form (no loop over frames).

    The unbounded position ``p0 + v t`` is folded into ``[0, travel]`` by a triangle wave, which is
    exactly a point reflecting off both walls.

    Args:
        start_positions: ``(..., 2)`` positions at frame 0, each coordinate in ``[0, travel]``.
        velocities: ``(..., 2)`` initial velocities in pixels per frame.
        num_frames: number of frames ``T``.
        travel: the wall distance (``image_size - digit_size``).

    Returns:
        ``(positions, velocities)``, each ``(T, ..., 2)``: the position and the current velocity
        (initial velocity with the sign of each coordinate flipped after every bounce) at each frame.
    """
    times = np.arange(num_frames, dtype=np.float64).reshape((-1,) + (1,) * start_positions.ndim)
    unfolded = start_positions[None] + velocities[None] * times
    if travel == 0:
        return np.zeros_like(unfolded), np.zeros_like(unfolded)
    phase = np.mod(unfolded, 2.0 * travel)
    moving_forward = phase <= travel
    positions = np.where(moving_forward, phase, 2.0 * travel - phase)
    current_velocity = np.where(moving_forward, 1.0, -1.0) * velocities[None]
    return positions, current_velocity


def render_digits(digit_images: torch.Tensor, trajectories: torch.Tensor, image_size: int) -> torch.Tensor:
    """Draw digits along trajectories; overlapping digits combine by ``max``.

    Vectorised over videos, frames and pixels (one indexed write per digit slot). Used by the generator
    and to render the ideal result of a swap (digit images of one video along another's trajectories).

    Args:
        digit_images: ``(B, D, h, w)`` digit images, float in [0, 1] or uint8 in [0, 255].
        trajectories: ``(B, T, D, 2)`` top-left corners (x, y) in pixels; rounded to the nearest pixel.
        image_size: side of the square canvas.

    Returns:
        ``(B, T, 1, image_size, image_size)`` float32 video in [0, 1], on the digit images' device.
    """
    if digit_images.ndim != 4 or trajectories.ndim != 4 or trajectories.shape[-1] != 2:
        raise ValueError(
            f"expected digit_images (B, D, h, w) and trajectories (B, T, D, 2), "
            f"got {tuple(digit_images.shape)} and {tuple(trajectories.shape)}"
        )
    batch, num_digits, height, width = digit_images.shape
    if trajectories.shape[0] != batch or trajectories.shape[2] != num_digits:
        raise ValueError(
            f"digit_images {tuple(digit_images.shape)} and trajectories {tuple(trajectories.shape)} "
            "disagree on the number of videos or digits"
        )
    device = digit_images.device
    if digit_images.dtype == torch.uint8:
        digit_images = digit_images.float() / 255.0
    digit_images = digit_images.float()
    corners = torch.round(trajectories.to(device=device, dtype=torch.float32)).long()  # (B, T, D, 2)
    limit_x, limit_y = image_size - width, image_size - height
    if corners.numel() and (
        corners[..., 0].min() < 0 or corners[..., 1].min() < 0
        or corners[..., 0].max() > limit_x or corners[..., 1].max() > limit_y
    ):
        raise ValueError(f"trajectories leave the {image_size}x{image_size} canvas for {height}x{width} digits")

    if device.type == "cpu":
        return _render_windows(digit_images, corners, image_size)
    return _render_flat(digit_images, corners, image_size)


def _render_windows(digit_images: torch.Tensor, corners: torch.Tensor, image_size: int) -> torch.Tensor:
    """``render_digits`` on the CPU: each digit is pasted through a strided view of every frame's
    ``h x w`` windows, indexed by (video, frame, top, left), so no per-pixel index is built (about 2x
    faster than ``_render_flat`` here). Not used on other devices, where writing through a view whose
    windows overlap in memory is not guaranteed by every indexing kernel (e.g. deterministic CUDA)."""
    batch, num_digits, height, width = digit_images.shape
    num_frames = corners.shape[1]
    canvas = torch.zeros(batch, num_frames, image_size, image_size)
    frame_area = image_size * image_size
    windows = canvas.as_strided(
        (batch, num_frames, image_size - height + 1, image_size - width + 1, height, width),
        (num_frames * frame_area, frame_area, image_size, 1, image_size, 1),
    )
    videos = torch.arange(batch).view(batch, 1)
    frames = torch.arange(num_frames).view(1, num_frames)
    for digit in range(num_digits):  # D is 1-3: a loop over digit slots, not over videos or frames
        where = (videos, frames, corners[:, :, digit, 1], corners[:, :, digit, 0])
        stamp = digit_images[:, digit].unsqueeze(1)  # (B, 1, h, w), broadcast over frames
        # The canvas starts at 0 and stamps are >= 0, so the first slot needs no max.
        windows[where] = stamp if digit == 0 else torch.maximum(windows[where], stamp)
    return canvas.view(batch, num_frames, 1, image_size, image_size)


def _render_flat(digit_images: torch.Tensor, corners: torch.Tensor, image_size: int) -> torch.Tensor:
    """``render_digits`` with an explicit flat index per (video, frame, digit pixel): plain indexed
    writes into a contiguous canvas, safe on every device."""
    batch, num_digits, height, width = digit_images.shape
    num_frames = corners.shape[1]
    device = digit_images.device
    frame_area = image_size * image_size
    canvas = torch.zeros(batch * num_frames * frame_area, device=device)
    # int32 index arithmetic is cheaper; the final flat index is widened to int64 for indexing.
    index_type = torch.int32 if canvas.numel() < 2**31 else torch.int64
    corners = corners.to(index_type)
    frame_starts = torch.arange(batch * num_frames, device=device, dtype=index_type) * frame_area
    frame_starts = frame_starts.view(batch, num_frames, 1, 1)
    pixel_offsets = (
        torch.arange(height, device=device, dtype=index_type).view(1, 1, height, 1) * image_size
        + torch.arange(width, device=device, dtype=index_type).view(1, 1, 1, width)
    )  # (1, 1, h, w)
    for digit in range(num_digits):
        corner = corners[:, :, digit, 1] * image_size + corners[:, :, digit, 0]  # (B, T)
        where = (frame_starts + corner.view(batch, num_frames, 1, 1) + pixel_offsets).reshape(-1).long()
        stamp = digit_images[:, digit].unsqueeze(1).expand(batch, num_frames, height, width).reshape(-1)
        canvas[where] = stamp if digit == 0 else torch.maximum(canvas[where], stamp)
    return canvas.view(batch, num_frames, 1, image_size, image_size)


def resize_digits(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, 28, 28)`` uint8 digits to ``size`` pixels (area averaging down, bilinear up)."""
    if images.shape[-1] == size:
        return images
    tensor = torch.from_numpy(images).float().unsqueeze(1)
    mode = "area" if size < images.shape[-1] else "bilinear"
    resized = F.interpolate(tensor, size=(size, size), mode=mode)
    return resized.squeeze(1).round().clamp(0, 255).to(torch.uint8).numpy()


# ----------------------------------------------------------------------------------------------------
# Datasets


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


class StandardMovingMNIST(Dataset):
    """The standard Moving MNIST test file ``mnist_test_seq.npy`` (Srivastava et al., 2015).

    uint8 of shape ``(T, N, H, W)`` (``(20, 10000, 64, 64)`` for the published file), memory-mapped. It
    has no factors: batches hold ``video`` and ``index`` only. Use it for reconstruction metrics that are
    comparable with published numbers.

    Args:
        path: the ``.npy`` file.
    """

    def __init__(self, path: str) -> None:
        try:
            array = np.load(path, mmap_mode="r")
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"standard Moving MNIST file {path} not found; it is mnist_test_seq.npy from "
                "the Moving MNIST page (Srivastava et al.), which this project never downloads"
            ) from error
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not a readable .npy file: {error}") from error
        if array.ndim != 4 or array.dtype != np.uint8 or array.shape[0] < 2 or array.shape[2] != array.shape[3]:
            raise ValueError(
                f"{path} has shape {array.shape} and dtype {array.dtype}; expected uint8 of shape "
                "(T, N, H, W) with T >= 2 and square frames, e.g. (20, 10000, 64, 64)"
            )
        self.path = path
        self.array = array

    def __len__(self) -> int:
        return self.array.shape[1]

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        if isinstance(index, (int, np.integer)):
            if not 0 <= index < len(self):
                raise IndexError(f"video index {index} out of range for {len(self)} videos")
            return {key: value[0] for key, value in self[[int(index)]].items()}
        indices = np.asarray(index, dtype=np.int64)
        frames = np.stack([self.array[:, i] for i in indices])  # (B, T, H, W)
        video = torch.from_numpy(frames).float().div_(255.0).unsqueeze(2)
        return {"video": video, "index": torch.from_numpy(indices)}


# ----------------------------------------------------------------------------------------------------
# Loaders


class VideoBatchSampler(Sampler[list[int]]):
    """Yields lists of video indices, one list per batch, for datasets that render a batch at once.

    Args:
        num_videos: videos per epoch (``N``).
        batch_size: videos per batch (per process when distributed).
        shuffle: visit an epoch's videos in a seeded random order.
        fresh: epoch ``e`` visits videos ``e * N ... (e + 1) * N - 1`` instead of ``0 ... N - 1``.
        drop_last: drop a last, smaller batch.
        seed: seed of the visiting order (the videos themselves depend on the dataset's seed only).
        rank: this process's rank; each rank takes a disjoint share of the epoch.
        world_size: number of processes.
    """

    def __init__(
        self,
        num_videos: int,
        batch_size: int,
        shuffle: bool = False,
        fresh: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must lie in [0, world_size={world_size})")
        self.num_videos, self.batch_size = num_videos, batch_size
        self.shuffle, self.fresh, self.drop_last = shuffle, fresh, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (its order, and its videos when ``fresh``)."""
        self.epoch = int(epoch)

    def _rank_indices(self) -> np.ndarray:
        order = np.arange(self.num_videos, dtype=np.int64)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        if self.fresh:
            order = order + self.epoch * self.num_videos
        # Equal disjoint shares (the remainder is dropped) so every rank runs the same number of steps.
        per_rank = len(order) // self.world_size
        return order[self.rank * per_rank : (self.rank + 1) * per_rank] if self.world_size > 1 else order

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._rank_indices()
        stop = len(indices) - len(indices) % self.batch_size if self.drop_last else len(indices)
        for start in range(0, stop, self.batch_size):
            yield indices[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        count = self.num_videos // self.world_size if self.world_size > 1 else self.num_videos
        return count // self.batch_size if self.drop_last else math.ceil(count / self.batch_size)


def _leave_signals_to_the_main_process(worker_id: int) -> None:
    """Loader workers ignore SIGINT and SIGTERM: Ctrl-C (or a scheduler's SIGTERM to the process group)
    reaches them too, and a worker killed by it would crash the main process's loader before the trainer
    saves ``last.pt``. The main process handles the signal and shuts the workers down; a worker whose
    parent dies exits on its own (PyTorch's worker watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_loader(
    dataset: Dataset, sampler: VideoBatchSampler, num_workers: int = 0, pin_memory: bool = False
) -> DataLoader:
    """A DataLoader over a batch-rendering dataset: each sampler list becomes one rendered batch."""
    return DataLoader(
        dataset,
        batch_size=None,  # the dataset renders whole batches; no per-item collation
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        worker_init_fn=_leave_signals_to_the_main_process if num_workers > 0 else None,
    )


def get_moving_mnist_dataloaders(
    batch_size: int = 32,
    train_size: int = 10_000,
    val_size: int = 1_000,
    test_size: int = 1_000,
    num_workers: int = 0,
    seed: int = 42,
    *,
    mnist_root: str | None = None,
    fresh_train: bool = True,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
    **video_options,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train, validation and test loaders of Moving MNIST with ground-truth factors.

    Each batch is a dict: ``video`` float32 ``(B, T, 1, H, W)`` in [0, 1] and the factors listed in the
    module docstring. Validation and test are fixed sets (same videos every epoch, in order); training
    is shuffled and, with ``fresh_train``, new videos every epoch (call ``loader.sampler.set_epoch(e)``).

    Args:
        batch_size: videos per batch (per process when distributed).
        train_size: training videos per epoch.
        val_size: validation videos.
        test_size: test videos.
        num_workers: DataLoader worker processes (0 renders in the main process).
        seed: experiment seed: fixes every video of every split.
        mnist_root: folder of the official MNIST files; None uses the embedded 5,000 digits.
        fresh_train: draw new training videos every epoch instead of repeating ``train_size`` of them.
        rank: process rank for distributed training (each rank gets a disjoint share of training).
        world_size: number of processes for distributed training.
        pin_memory: pin batches in page-locked memory (faster copies to a GPU).
        **video_options: fields of :class:`MovingMNISTConfig` (``image_size``, ``digit_size``,
            ``num_digits``, ``num_frames``, ``min_speed``, ``max_speed``).

    Returns:
        ``(train_loader, val_loader, test_loader)``.
    """
    known = set(MovingMNISTConfig.__dataclass_fields__)
    unknown = set(video_options) - known
    if unknown:
        raise TypeError(f"unknown video option(s) {sorted(unknown)}; valid options are {sorted(known)}")
    config = MovingMNISTConfig(**video_options)
    for name, value in (("batch_size", batch_size), ("train_size", train_size),
                        ("val_size", val_size), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    digits = load_digits(mnist_root)
    loaders = []
    for split, size in (("train", train_size), ("val", val_size), ("test", test_size)):
        dataset = MovingMNIST(split, size, config, seed=seed, digits=digits)
        is_train = split == "train"
        sampler = VideoBatchSampler(
            size,
            batch_size,
            shuffle=is_train,
            fresh=is_train and fresh_train,
            drop_last=is_train and size >= batch_size * world_size,
            seed=seed,
            rank=rank if is_train else 0,
            world_size=world_size if is_train else 1,
        )
        loaders.append(batch_loader(dataset, sampler, num_workers, pin_memory))
    return loaders[0], loaders[1], loaders[2]


def get_standard_test_loader(path: str, batch_size: int = 32, num_workers: int = 0) -> DataLoader:
    """A loader over ``mnist_test_seq.npy`` (no factors), in file order."""
    dataset = StandardMovingMNIST(path)
    return batch_loader(dataset, VideoBatchSampler(len(dataset), batch_size), num_workers)


def config_dict(config: MovingMNISTConfig) -> dict:
    """The config as a plain dict (for checkpoints and JSON)."""
    return asdict(config)
