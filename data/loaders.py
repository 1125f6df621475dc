"""Loaders of Moving MNIST: a batch sampler and the train / validation / test loaders.

The datasets render whole batches (:mod:`data.moving_mnist`), so a loader's sampler yields lists of
video indices and each list becomes one rendered batch. Validation and test are fixed sets (same videos
every epoch, in order); training is shuffled and, with ``fresh_train``, new videos every epoch.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from .config import DataConfig, MovingMNISTConfig
from .mnist import load_digits
from .moving_mnist import MovingMNIST, StandardMovingMNIST
from .video_file import VideoFileDataset, read_video_file, split_indices


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
    dataset: str = "mnist",
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
        dataset: ``"mnist"`` or ``"fashion"`` (:func:`data.mnist.load_digits`).
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
    video = MovingMNISTConfig(**video_options)
    for name, value in (("train_size", train_size), ("val_size", val_size), ("test_size", test_size)):
        _check_positive(name, value)
    return _split_loaders(video, (train_size, val_size, test_size), batch_size, seed, mnist_root, fresh_train,
                          num_workers, rank, world_size, pin_memory, dataset)


def data_loaders(
    config: DataConfig,
    batch_size: int,
    *,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """The train, validation and test loaders of a data config (what training and evaluation use).

    Args:
        config: which videos (split sizes, video config, seed, fresh training videos, MNIST source).
        batch_size: videos per batch (per process when distributed).
        num_workers: DataLoader worker processes (0 renders in the main process).
        rank: process rank for distributed training (each rank gets a disjoint share of training).
        world_size: number of processes for distributed training.
        pin_memory: pin batches in page-locked memory (faster copies to a GPU).

    Returns:
        ``(train_loader, val_loader, test_loader)``, as :func:`get_moving_mnist_dataloaders` builds them, or
        over the splits of ``config.video_file`` (:func:`video_file_loaders`).
    """
    if config.video_file is not None:
        return video_file_loaders(config, batch_size, num_workers=num_workers, rank=rank, world_size=world_size,
                                  pin_memory=pin_memory)
    return _split_loaders(config.video, (config.train_size, config.val_size, config.test_size), batch_size,
                          config.seed, config.mnist_root, config.fresh_train, num_workers, rank, world_size,
                          pin_memory, config.dataset)


def video_file_loaders(
    config: DataConfig, batch_size: int, *, num_workers: int = 0, rank: int = 0, world_size: int = 1,
    pin_memory: bool = False,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train, validation and test loaders over ``config.video_file`` (:mod:`data.video_file`): the splits are
    a permutation seeded by ``config.seed`` (test first, then validation, then training); training is
    shuffled every epoch (never fresh: the file's videos are all there is).

    Raises:
        data.video_file.VideoFileError: the file cannot be used, disagrees with the config's frames or image
            size, or holds fewer videos than the splits ask for.
    """
    _check_positive("batch_size", batch_size)
    videos = read_video_file(config.video_file, config.video_layout)
    video = config.video
    if (videos.num_frames, videos.image_size) != (video.num_frames, video.image_size):
        raise ValueError(f"{config.video_file} has {videos.num_frames} frames of {videos.image_size}x"
                         f"{videos.image_size} but the data config has {video.num_frames} of {video.image_size}x"
                         f"{video.image_size}")
    sizes = {"train": config.train_size, "val": config.val_size, "test": config.test_size}
    indices = split_indices(videos.num_videos, sizes, config.seed)
    loaders = []
    for split in ("train", "val", "test"):
        is_train = split == "train"
        size = len(indices[split])
        sampler = VideoBatchSampler(
            size, batch_size, shuffle=is_train, drop_last=is_train and size >= batch_size * world_size,
            seed=config.seed, rank=rank if is_train else 0, world_size=world_size if is_train else 1,
        )
        loaders.append(batch_loader(VideoFileDataset(videos, indices[split]), sampler, num_workers, pin_memory))
    return loaders[0], loaders[1], loaders[2]


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _split_loaders(
    video: MovingMNISTConfig, sizes: tuple[int, int, int], batch_size: int, seed: int, mnist_root: str | None,
    fresh_train: bool, num_workers: int, rank: int, world_size: int, pin_memory: bool, dataset: str = "mnist",
) -> tuple[DataLoader, DataLoader, DataLoader]:
    _check_positive("batch_size", batch_size)
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    digits = load_digits(mnist_root, dataset)
    loaders = []
    for split, size in zip(("train", "val", "test"), sizes, strict=True):
        dataset = MovingMNIST(split, size, video, seed=seed, digits=digits)
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


def video_file_test_loader(config: DataConfig, batch_size: int, num_workers: int = 0) -> DataLoader:
    """The test split of ``config.video_file`` alone: the first ``config.test_size`` videos of the seeded
    permutation (the same videos as :func:`video_file_loaders`' test loader, whatever the other sizes).

    Raises:
        data.video_file.VideoFileError: the file cannot be used or holds fewer than ``test_size`` videos.
    """
    _check_positive("batch_size", batch_size)
    videos = read_video_file(config.video_file, config.video_layout)
    indices = split_indices(videos.num_videos, {"train": 0, "val": 0, "test": config.test_size}, config.seed)
    sampler = VideoBatchSampler(config.test_size, batch_size)
    return batch_loader(VideoFileDataset(videos, indices["test"]), sampler, num_workers)


def get_standard_test_loader(path: str, batch_size: int = 32, num_workers: int = 0,
                             layout: str | None = None) -> DataLoader:
    """A loader over ``mnist_test_seq.npy`` (no factors), in file order (any layout of
    :mod:`data.video_file`; ``layout`` None infers it)."""
    dataset = StandardMovingMNIST(path, layout)
    return batch_loader(dataset, VideoBatchSampler(len(dataset), batch_size), num_workers)
