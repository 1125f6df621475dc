"""Moving MNIST with ground-truth content and motion factors.

Content factors: ``labels``, ``digit_ids``. Motion factors: ``start_positions``, ``trajectory``,
``velocity``, ``direction``, ``speed``. See :mod:`data.moving_mnist` for shapes and meaning,
:mod:`data.config` for the configs, :mod:`data.render` for how a video is drawn and :mod:`data.loaders`
for the loaders.
"""

import torch

from .config import DataConfig, MovingMNISTConfig, default_digit_size
from .loaders import (
    VideoBatchSampler,
    data_loaders,
    get_moving_mnist_dataloaders,
    get_standard_test_loader,
    video_file_loaders,
)
from .mnist import CLASS_NAMES, DATASET_TITLES, DATASETS, DigitSet, load_digits
from .moving_mnist import MovingMNIST, StandardMovingMNIST
from .render import bounce_trajectories, render_digits
from .video_file import VideoArray, VideoFileDataset, VideoFileError, read_video_file


def video_of(batch: dict | torch.Tensor) -> torch.Tensor:
    """The video tensor of a batch, whether the batch is a factor dict or a bare tensor."""
    return batch["video"] if isinstance(batch, dict) else batch


__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "DATASET_TITLES",
    "VideoArray",
    "VideoFileDataset",
    "VideoFileError",
    "read_video_file",
    "video_file_loaders",
    "DataConfig",
    "DigitSet",
    "MovingMNIST",
    "MovingMNISTConfig",
    "StandardMovingMNIST",
    "VideoBatchSampler",
    "bounce_trajectories",
    "data_loaders",
    "default_digit_size",
    "get_moving_mnist_dataloaders",
    "get_standard_test_loader",
    "load_digits",
    "render_digits",
    "video_of",
]
