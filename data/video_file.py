"""Videos from a ``.npy`` / ``.npz`` array: the one reader of ``--video-file`` and ``--standard-test-file``.

Accepted layouts (``T`` frames, ``N`` videos, ``C`` channels, ``H`` x ``W`` frames):

========= ====================== ============================================================
layout    shape                  example
========= ====================== ============================================================
``TNHW``  (T, N, H, W)           the standard Moving MNIST test file ``mnist_test_seq.npy``,
                                 uint8 (20, 10000, 64, 64): time first
``NTHW``  (N, T, H, W)           one video after the other
``NTCHW`` (N, T, C, H, W)        the project's own (B, T, C, H, W); C must be 1 (grayscale)
========= ====================== ============================================================

**Which layout.** A 5-D array is ``NTCHW``. A 4-D array is ``TNHW`` or ``NTHW``: the layout is inferred only
when one of its first two axes is at least twice as long as the other, and time is then the shorter one
(videos are many, frames few: (20, 10000) is time first, (2000, 20) videos first); otherwise the reader
refuses and asks for ``--video-layout``. The layout used, and how it was chosen, is in ``VideoArray.layout_note``.

**Values.** uint8 is divided by 255; floats (16, 32 or 64 bits) must lie in [0, 1] without NaN (checked in
chunks, so a large file is never copied whole into memory). ``.npy`` files are memory-mapped
(``np.load(mmap_mode="r")``): a batch reads only its own videos. ``.npz`` archives are zip files, which
numpy cannot memory-map: their one array (or the one named ``videos``) is read into memory.

**Splits.** :func:`split_indices` cuts a seeded permutation of the N videos into test (first), validation
(next) and training (the rest), so a split never changes with the batch size and test videos are never
trained on. Every problem raises :class:`VideoFileError` (a ``ValueError``) with a one-line message.
"""

from __future__ import annotations

import functools
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .config import VIDEO_LAYOUTS

MIN_FRAMES = 2
FRAME_MULTIPLE = 16  # the models' frames: square, a multiple of 16 a side (models.config)
_FLOAT_KINDS = (np.float16, np.float32, np.float64)
_CHECK_CHUNK_BYTES = 64 << 20  # range and NaN checks read this much at a time
EXAMPLE = "e.g. uint8 (20, N, 64, 64) time first as mnist_test_seq.npy, or (N, 20, 64, 64)"


class VideoFileError(ValueError):
    """A video file that cannot be used, with a one-line message."""


@dataclass(frozen=True)
class VideoArray:
    """A checked array of videos (possibly memory-mapped) and its layout.

    Attributes:
        path: the file.
        array: the raw array, in its own layout and dtype.
        layout: ``"TNHW"``, ``"NTHW"`` or ``"NTCHW"``.
        layout_note: how the layout was chosen, in words (for the log).
    """

    path: str
    array: np.ndarray
    layout: str
    layout_note: str

    @property
    def num_videos(self) -> int:
        return int(self.array.shape[1] if self.layout == "TNHW" else self.array.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.array.shape[0] if self.layout == "TNHW" else self.array.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.array.shape[-1])

    def describe(self) -> str:
        """One line: the file, its videos and layout."""
        return (f"{self.path}: {self.num_videos} videos of {self.num_frames} frames, {self.image_size}x"
                f"{self.image_size}, {self.array.dtype}; layout {self.layout} ({self.layout_note})")

    def videos(self, indices: Sequence[int] | np.ndarray) -> torch.Tensor:
        """The videos at ``indices`` as float32 ``(B, T, 1, H, W)`` in [0, 1]."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.layout == "TNHW":
            frames = np.stack([self.array[:, index] for index in indices])  # (B, T, H, W)
        else:
            frames = np.stack([self.array[index] for index in indices])  # (B, T, H, W) or (B, T, 1, H, W)
        video = torch.from_numpy(np.ascontiguousarray(frames))
        video = video.float().div_(255.0) if video.dtype == torch.uint8 else video.float()
        return video.unsqueeze(2) if self.layout != "NTCHW" else video


def _open_array(path: Path) -> np.ndarray:
    """The file's array (memory-mapped for ``.npy``), or :class:`VideoFileError`."""
    if not path.exists():
        raise VideoFileError(f"video file {path} does not exist")
    if not path.is_file():
        raise VideoFileError(f"video file {path} is not a file")
    if path.stat().st_size == 0:
        raise VideoFileError(f"video file {path} is empty (0 bytes); {EXAMPLE}")
    if path.suffix not in (".npy", ".npz"):
        raise VideoFileError(f"video file {path} must be a .npy or .npz array (numpy.save / numpy.savez), "
                             f"got a {path.suffix or 'suffix-less'} file")
    try:
        if path.suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            if len(names) != 1 and "videos" not in names:
                raise VideoFileError(f"{path} holds the arrays {names}; expected one array, or one named "
                                     "'videos'")
            return archive["videos" if "videos" in names else names[0]]
    except VideoFileError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        # numpy's own message for a text file suggests allow_pickle: not the fix here
        raise VideoFileError(f"{path} is not a {path.suffix} array file (numpy could not read it as one: "
                             f"{type(error).__name__}); {EXAMPLE}") from None


def _choose_layout(shape: tuple[int, ...], layout: str | None, path: Path,
                   default_layout: str | None) -> tuple[str, str]:
    if layout is not None:
        if layout not in VIDEO_LAYOUTS:
            raise VideoFileError(f"unknown video layout {layout!r}; expected one of {list(VIDEO_LAYOUTS)}")
        if len(shape) != len(layout):
            raise VideoFileError(f"{path} has shape {shape} ({len(shape)} dimensions) but --video-layout "
                                 f"{layout} has {len(layout)}")
        return layout, "given by --video-layout"
    if len(shape) == 5:
        return "NTCHW", "inferred: 5 dimensions"
    if default_layout is not None:
        return default_layout, "the standard test file's layout"
    first, second = shape[0], shape[1]
    if max(first, second) < 2 * min(first, second):
        raise VideoFileError(f"{path} has shape {shape}: cannot tell whether time is the first axis (TNHW) or "
                             "the second (NTHW); pass --video-layout TNHW or --video-layout NTHW")
    if first < second:
        return "TNHW", f"inferred: the first axis ({first}) is the shorter, so it is time"
    return "NTHW", f"inferred: the second axis ({second}) is the shorter, so it is time"


def _check_values(array: np.ndarray, path: Path) -> None:
    """Floats must be finite and in [0, 1]; read in chunks along the first axis (never the whole file)."""
    if array.dtype == np.uint8:
        return
    if array.dtype.type not in _FLOAT_KINDS:
        raise VideoFileError(f"{path} holds {array.dtype}; expected uint8 (0-255) or floats in [0, 1]")
    per_row = max(1, array[0].nbytes)
    step = max(1, _CHECK_CHUNK_BYTES // per_row)
    low, high = np.inf, -np.inf
    for start in range(0, array.shape[0], step):
        chunk = np.asarray(array[start : start + step])
        if np.isnan(chunk).any():
            raise VideoFileError(f"{path} holds NaN values; expected floats in [0, 1] (or uint8)")
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if low < 0.0 or high > 1.0:
        raise VideoFileError(f"{path} holds values in [{low:g}, {high:g}]; float videos must lie in [0, 1] "
                             "(or store uint8 0-255, which is divided by 255)")


def read_video_file(path: str | Path, layout: str | None = None, default_layout: str | None = None) -> VideoArray:
    """Open and check an array of videos (module docstring: layouts, values, memory mapping).

    The last few files read are remembered while unchanged on disk (same size and modification time), so an
    evaluation that checks the file and then builds its loaders reads a ``.npz`` (which cannot be memory-mapped)
    and scans its values once, not twice.

    Args:
        path: a ``.npy`` or ``.npz`` file.
        layout: ``"TNHW"``, ``"NTHW"`` or ``"NTCHW"``; None infers it.
        default_layout: the layout of a 4-D array when ``layout`` is None, instead of inferring it (the
            standard test file's reader says ``"TNHW"``, that file's layout).

    Returns:
        The :class:`VideoArray`.

    Raises:
        VideoFileError: a missing file, a file that is not an array (e.g. text), another dtype, NaN or values
            outside [0, 1], a wrong number of dimensions, an empty array, a layout that cannot be inferred,
            more than one channel, fewer than 2 frames, or frames that are not square multiples of 16.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:  # missing or unreadable: the checks below say so in one line
        return _read_checked(path, layout, default_layout)
    return _remembered_read(str(path.resolve()), str(path), layout, default_layout, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _remembered_read(resolved: str, given: str, layout: str | None, default_layout: str | None, size: int,
                     modified_ns: int) -> VideoArray:
    """:func:`_read_checked`, remembered by the file's resolved path, size and modification time."""
    return _read_checked(Path(given), layout, default_layout)


def _read_checked(path: Path, layout: str | None, default_layout: str | None) -> VideoArray:
    """The reading and every check of :func:`read_video_file`, uncached."""
    array = _open_array(path)
    if array.ndim not in (4, 5):
        raise VideoFileError(f"{path} has shape {array.shape} ({array.ndim} dimensions); expected 4 (T, N, H, W) "
                             f"or (N, T, H, W), or 5 (N, T, C, H, W); {EXAMPLE}")
    if array.size == 0:
        raise VideoFileError(f"{path} holds no video (an empty array of shape {array.shape}); {EXAMPLE}")
    if array.dtype != np.uint8 and array.dtype.type not in _FLOAT_KINDS:
        raise VideoFileError(f"{path} holds {array.dtype}; expected uint8 (0-255) or floats in [0, 1]")
    chosen, note = _choose_layout(tuple(array.shape), layout, path, default_layout)
    videos = VideoArray(str(path), array, chosen, note)
    height, width = array.shape[-2:]
    if chosen == "NTCHW" and array.shape[2] != 1:
        raise VideoFileError(f"{path} has {array.shape[2]} channels (shape {array.shape}, layout NTCHW); the "
                             "models read grayscale videos: C must be 1")
    if height != width or height < FRAME_MULTIPLE or height % FRAME_MULTIPLE:
        raise VideoFileError(f"{path} has {height}x{width} frames (shape {array.shape}); the models take square "
                             f"frames whose side is a multiple of {FRAME_MULTIPLE} (e.g. 32x32, 64x64)")
    if videos.num_frames < MIN_FRAMES:
        raise VideoFileError(f"{path} has videos of {videos.num_frames} frame (shape {array.shape}, layout "
                             f"{chosen}); a video needs at least {MIN_FRAMES}")
    _check_values(array, path)
    return videos


def split_indices(num_videos: int, sizes: dict[str, int], seed: int) -> dict[str, np.ndarray]:
    """Disjoint test / val / train video indices: a seeded permutation cut in that order.

    Args:
        num_videos: N, the videos in the file.
        sizes: ``{"train": ..., "val": ..., "test": ...}`` videos per split.
        seed: fixes the permutation.

    Raises:
        VideoFileError: the splits ask for more videos than the file holds.
    """
    wanted = sizes["test"] + sizes["val"] + sizes["train"]
    if wanted > num_videos:
        raise VideoFileError(f"the splits ask for {wanted} videos (train {sizes['train']}, val {sizes['val']}, "
                             f"test {sizes['test']}) but the video file holds {num_videos}")
    order = np.random.default_rng(seed).permutation(num_videos)
    test_end, val_end = sizes["test"], sizes["test"] + sizes["val"]
    return {"test": order[:test_end], "val": order[test_end:val_end],
            "train": order[val_end : val_end + sizes["train"]]}


def default_split_sizes(num_videos: int) -> dict[str, int]:
    """10% test, 10% validation (at least one video each), the rest training.

    Raises:
        VideoFileError: fewer than 3 videos (one per split).
    """
    if num_videos < 3:
        raise VideoFileError(f"the video file holds {num_videos} video(s); training needs at least 3 (one each "
                             "for training, validation and test)")
    held_out = max(1, round(0.1 * num_videos))
    return {"train": num_videos - 2 * held_out, "val": held_out, "test": held_out}


class VideoFileDataset(Dataset):
    """Some videos of a :class:`VideoArray` (a split), rendered as batches of ``{"video", "index"}``.

    ``dataset[[i, j, ...]]`` returns a batch dict (what the loaders use): ``video`` ``(B, T, 1, H, W)`` in
    [0, 1] and ``index``, each video's index in the file. No ground-truth factors.

    Args:
        videos: the checked array.
        indices: the file indices of this split's videos, in order; None: every video, in file order.
    """

    has_factors = False

    def __init__(self, videos: VideoArray, indices: np.ndarray | None = None) -> None:
        self.videos = videos
        self.indices = np.arange(videos.num_videos) if indices is None else np.asarray(indices, dtype=np.int64)

    @property
    def image_size(self) -> int:
        return self.videos.image_size

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int | Sequence[int] | np.ndarray) -> dict[str, torch.Tensor]:
        if isinstance(index, (int, np.integer)):
            if not 0 <= index < len(self):
                raise IndexError(f"video index {index} out of range for {len(self)} videos")
            return {key: value[0] for key, value in self[[int(index)]].items()}
        chosen = self.indices[np.asarray(index, dtype=np.int64)]
        return {"video": self.videos.videos(chosen), "index": torch.from_numpy(chosen)}
