"""Moving MNIST: determinism, factors that agree with the pixels, digit pools, file loaders, bad input."""

import gzip
import math

import numpy as np
import pytest
import torch

from data import (
    MovingMNIST,
    MovingMNISTConfig,
    StandardMovingMNIST,
    VideoBatchSampler,
    bounce_trajectories,
    get_moving_mnist_dataloaders,
    get_standard_test_loader,
    load_digits,
    render_digits,
)
from data.mnist import _IMAGE_MAGIC, _LABEL_MAGIC

TINY = dict(image_size=32, digit_size=14, num_frames=6)


def tiny_loaders(**overrides):
    options = dict(batch_size=4, train_size=12, val_size=10, test_size=10, seed=3, **TINY)
    options.update(overrides)
    return get_moving_mnist_dataloaders(**options)


def concat(loader, key="video"):
    return torch.cat([batch[key] for batch in loader])


# ----------------------------------------------------------------------------------------------------
# Shapes and values


def test_batch_shapes_dtypes_and_range():
    train, val, test = tiny_loaders()
    batch = next(iter(train))
    assert batch["video"].shape == (4, 6, 1, 32, 32)
    assert batch["video"].dtype == torch.float32
    assert 0.0 <= batch["video"].min() and batch["video"].max() <= 1.0
    assert batch["video"].max() > 0.5  # digits are drawn
    assert batch["labels"].shape == (4, 2) and batch["labels"].dtype == torch.int64
    assert batch["trajectory"].shape == (4, 6, 2, 2)
    assert batch["velocity"].shape == (4, 6, 2, 2)
    assert batch["start_positions"].shape == (4, 2, 2)
    assert batch["direction"].shape == batch["speed"].shape == (4, 2)
    assert len(val.dataset) == 10 and sum(len(b["video"]) for b in val) == 10
    assert len(train) == 3 and len(test) == 3


def test_default_protocol_is_the_standard_one():
    config = MovingMNISTConfig()
    assert (config.image_size, config.digit_size, config.num_digits, config.num_frames) == (64, 28, 2, 20)
    batch = MovingMNIST("test", 4, seed=0)[[0, 1, 2, 3]]
    assert batch["video"].shape == (4, 20, 1, 64, 64)


# ----------------------------------------------------------------------------------------------------
# Determinism


def test_videos_do_not_depend_on_batch_size_workers_or_order():
    reference = concat(tiny_loaders(batch_size=4)[1])
    assert torch.equal(reference, concat(tiny_loaders(batch_size=3)[1]))
    assert torch.equal(reference, concat(tiny_loaders(batch_size=5, num_workers=2)[1]))
    dataset = tiny_loaders()[1].dataset
    backwards = dataset[list(range(9, -1, -1))]["video"]
    assert torch.equal(reference, backwards.flip(0))
    assert torch.equal(reference[7], dataset[7]["video"])


def test_seed_and_split_change_the_videos():
    same = concat(tiny_loaders(seed=3)[2])
    assert torch.equal(same, concat(tiny_loaders(seed=3)[2]))
    assert not torch.equal(same, concat(tiny_loaders(seed=4)[2]))
    val_ids = concat(tiny_loaders(seed=3)[1], "digit_ids")
    test_ids = concat(tiny_loaders(seed=3)[2], "digit_ids")
    assert not torch.equal(val_ids, test_ids)


def test_fresh_training_epochs_draw_new_videos():
    train = tiny_loaders()[0]
    first = concat(train, "index")
    train.sampler.set_epoch(1)
    second = concat(train, "index")
    assert set(first.tolist()).isdisjoint(second.tolist())
    repeated = tiny_loaders(fresh_train=False)[0]
    epoch0 = set(concat(repeated, "index").tolist())
    repeated.sampler.set_epoch(1)
    assert set(concat(repeated, "index").tolist()) == epoch0 == set(range(12))


def test_distributed_ranks_take_disjoint_shares():
    shares = []
    for rank in range(2):
        sampler = VideoBatchSampler(10, 2, shuffle=True, fresh=True, seed=1, rank=rank, world_size=2)
        sampler.set_epoch(2)
        shares.append([i for batch in sampler for i in batch])
    assert len(shares[0]) == len(shares[1]) == 5
    assert set(shares[0]).isdisjoint(shares[1])
    assert set(shares[0]) | set(shares[1]) == set(range(20, 30))


# ----------------------------------------------------------------------------------------------------
# Factors agree with the pixels


def naive_render(images, trajectory, image_size):
    """Reference: one video, one frame, one digit at a time, pasted at the rounded corner."""
    num_frames, num_digits = trajectory.shape[:2]
    height, width = images.shape[-2:]
    video = np.zeros((num_frames, image_size, image_size), dtype=np.float32)
    for t in range(num_frames):
        for d in range(num_digits):
            x, y = (int(math.floor(v + 0.5)) for v in trajectory[t, d])
            patch = video[t, y : y + height, x : x + width]
            np.maximum(patch, images[d].astype(np.float32) / 255.0, out=patch)
    return video


def test_rerendering_the_factors_reproduces_every_frame():
    dataset = MovingMNIST("train", 20, MovingMNISTConfig(**TINY), seed=11)
    batch = dataset[list(range(8))]
    for i in range(8):
        images = dataset.digit_images(batch["digit_ids"][i]).numpy()
        expected = naive_render(images, batch["trajectory"][i].numpy(), 32)
        np.testing.assert_allclose(batch["video"][i, :, 0].numpy(), expected, atol=1e-7)
    # Labels are the labels of the digit images that were drawn.
    assert torch.equal(batch["labels"], torch.from_numpy(dataset.digits.labels[batch["digit_ids"].numpy()]))


def test_render_digits_swaps_content_and_motion():
    dataset = MovingMNIST("val", 10, MovingMNISTConfig(**TINY), seed=5)
    batch = dataset[[0, 1]]
    images = dataset.digit_images(batch["digit_ids"])
    swapped = render_digits(images[[0]], batch["trajectory"][[1]], 32)  # digits of video 0, paths of 1
    expected = naive_render(images[0].numpy(), batch["trajectory"][1].numpy(), 32)
    np.testing.assert_allclose(swapped[0, :, 0].numpy(), expected, atol=1e-7)


@pytest.mark.parametrize(("num_digits", "height", "width", "image_size"), [(1, 5, 5, 12), (3, 7, 4, 16), (2, 9, 9, 9)])
def test_both_renderers_match_the_naive_one(num_digits, height, width, image_size):
    """The CPU renderer (strided windows) and the one used on other devices (flat indices) draw the same
    pixels as pasting one digit at a time, also where digits overlap (corners drawn from a small range)."""
    from data.render import _render_flat, _render_windows

    generator = torch.Generator().manual_seed(num_digits)
    images = torch.randint(0, 256, (4, num_digits, height, width), dtype=torch.uint8, generator=generator)
    limits = torch.tensor([image_size - width, image_size - height])
    corners = (torch.rand(4, 6, num_digits, 2, generator=generator) * (limits + 1)).long().clamp(max=limits)
    floats = images.float() / 255.0
    windows, flat = _render_windows(floats, corners, image_size), _render_flat(floats, corners, image_size)
    assert torch.equal(windows, flat) and torch.equal(render_digits(images, corners.float(), image_size), windows)
    for video in range(4):
        expected = naive_render(images[video].numpy(), corners[video].numpy(), image_size)
        np.testing.assert_array_equal(windows[video, :, 0].numpy(), expected)


def naive_bounce(start, velocity, num_frames, travel):
    """Reference: step by step, reflecting off each wall (valid while a step is shorter than travel)."""
    position, velocity = np.array(start, float), np.array(velocity, float)
    positions, velocities = [], []
    for _ in range(num_frames):
        positions.append(position.copy())
        velocities.append(velocity.copy())
        position = position + velocity
        low, high = position < 0, position > travel
        position[low], velocity[low] = -position[low], -velocity[low]
        position[high], velocity[high] = 2 * travel - position[high], -velocity[high]
    return np.array(positions), np.array(velocities)


def test_closed_form_bounces_match_a_step_by_step_simulation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        start = rng.uniform(0, 36, size=2)
        velocity = rng.uniform(-5, 5, size=2)
        positions, velocities = bounce_trajectories(start, velocity, 40, 36.0)
        ref_positions, ref_velocities = naive_bounce(start, velocity, 40, 36.0)
        np.testing.assert_allclose(positions, ref_positions, atol=1e-9)
        np.testing.assert_allclose(velocities, ref_velocities, atol=1e-12)


def test_digits_stay_inside_and_keep_their_speed():
    config = MovingMNISTConfig(num_frames=30, min_speed=2.0, max_speed=5.0)
    factors = MovingMNIST("train", 200, config, seed=1).factors(np.arange(200))
    trajectory = factors["trajectory"]
    assert trajectory.min() >= 0 and trajectory.max() <= config.travel
    speeds = np.linalg.norm(factors["velocity"], axis=-1)  # (B, T, D)
    np.testing.assert_allclose(speeds, np.broadcast_to(factors["speed"][:, None], speeds.shape), rtol=1e-5)
    assert factors["speed"].min() >= 2.0 and factors["speed"].max() <= 5.0
    np.testing.assert_allclose(trajectory[:, 0], factors["start_positions"])
    direction = np.arctan2(factors["velocity"][:, 0, :, 1], factors["velocity"][:, 0, :, 0]) % (2 * np.pi)
    np.testing.assert_allclose(direction, factors["direction"], atol=1e-4)


def test_positions_and_directions_cover_their_ranges():
    factors = MovingMNIST("train", 2000, seed=2).factors(np.arange(2000))
    start = factors["start_positions"]
    assert start.min() < 1 and start.max() > 35  # uniform over [0, 36]
    histogram = np.histogram(factors["direction"], bins=8, range=(0, 2 * np.pi))[0]
    assert histogram.min() > 0.8 * histogram.mean()


# ----------------------------------------------------------------------------------------------------
# Digit pools


def test_embedded_pools_are_disjoint_and_balanced():
    digits = load_digits()
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    pools = {split: set(digits.pool(split).tolist()) for split in ("train", "val", "test")}
    assert pools["train"].isdisjoint(pools["val"]) and pools["train"].isdisjoint(pools["test"])
    assert pools["val"].isdisjoint(pools["test"])
    for split, per_class in (("train", 400), ("val", 50), ("test", 50)):
        counts = np.bincount(digits.labels[digits.pool(split)], minlength=10)
        assert (counts == per_class).all()


def test_each_split_draws_only_from_its_pool():
    digits = load_digits()
    for split in ("train", "val", "test"):
        ids = MovingMNIST(split, 300, digits=digits).factors(np.arange(300))["digit_ids"]
        assert set(ids.ravel().tolist()) <= set(digits.pool(split).tolist())


# ----------------------------------------------------------------------------------------------------
# File loaders


def write_idx(path, array, magic, compress):
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(f"{path}.gz", "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


def write_fake_mnist(folder, compress, num_train=200, num_test=40):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": (rng.integers(0, 256, (num_train, 28, 28)), _IMAGE_MAGIC),
        "train-labels-idx1-ubyte": (np.arange(num_train) % 10, _LABEL_MAGIC),
        "t10k-images-idx3-ubyte": (rng.integers(0, 256, (num_test, 28, 28)), _IMAGE_MAGIC),
        "t10k-labels-idx1-ubyte": (np.arange(num_test) % 10, _LABEL_MAGIC),
    }
    for name, (array, magic) in arrays.items():
        write_idx(folder / name, array, magic, compress)
    return arrays


@pytest.mark.parametrize("compress", [False, True])
def test_official_idx_files_load_with_pools(tmp_path, compress):
    arrays = write_fake_mnist(tmp_path / "MNIST" / "raw", compress)  # torchvision's layout
    digits = load_digits(tmp_path)
    assert digits.images.shape == (240, 28, 28)
    np.testing.assert_array_equal(digits.images[:200], arrays["train-images-idx3-ubyte"][0])
    np.testing.assert_array_equal(digits.images[200:], arrays["t10k-images-idx3-ubyte"][0])
    assert len(digits.pool("val")) == 20 and len(digits.pool("train")) == 180
    assert digits.pool("test").tolist() == list(range(200, 240))
    assert set(digits.pool("train").tolist()).isdisjoint(digits.pool("val").tolist())
    assert (np.bincount(digits.labels[digits.pool("val")]) == 2).all()
    batch = next(iter(get_moving_mnist_dataloaders(2, 4, 4, 4, mnist_root=str(tmp_path), **TINY)[2]))
    assert batch["digit_ids"].min() >= 200


def test_standard_test_file_loads_without_factors(tmp_path):
    sequences = np.random.default_rng(0).integers(0, 256, (20, 5, 64, 64), dtype=np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, sequences)
    loader = get_standard_test_loader(str(path), batch_size=2)
    video = concat(loader)
    assert video.shape == (5, 20, 1, 64, 64) and video.dtype == torch.float32
    np.testing.assert_allclose(video[3, :, 0].numpy(), sequences[:, 3] / 255.0, rtol=1e-6)
    assert set(next(iter(loader))) == {"video", "index"}


# ----------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(image_size=20, digit_size=28), "larger than the canvas"),
        (dict(num_frames=1), "at least 2"),
        (dict(image_size=0), "image_size must be a positive integer"),
        (dict(num_digits=-1), "num_digits must be a positive integer"),
        (dict(min_speed=3.0, max_speed=1.0), "min_speed <= max_speed"),
    ],
)
def test_bad_video_options_raise_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        MovingMNISTConfig(**options)


def test_bad_loader_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        get_moving_mnist_dataloaders(batch_size=0)
    with pytest.raises(ValueError, match="train_size must be a positive integer"):
        get_moving_mnist_dataloaders(train_size=-5)
    with pytest.raises(TypeError, match="unknown video option"):
        get_moving_mnist_dataloaders(frames=10)
    with pytest.raises(ValueError, match="unknown split"):
        MovingMNIST("training", 10)


def test_missing_mnist_folder_or_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_digits(tmp_path / "nowhere")
    write_fake_mnist(tmp_path / "partial", compress=False)
    (tmp_path / "partial" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_digits(tmp_path / "partial")


def test_malformed_mnist_files_raise(tmp_path):
    write_fake_mnist(tmp_path / "magic", compress=False)
    write_idx(tmp_path / "magic" / "train-images-idx3-ubyte", np.zeros((200, 28, 28)), _LABEL_MAGIC, False)
    with pytest.raises(ValueError, match="magic number"):
        load_digits(tmp_path / "magic")

    write_fake_mnist(tmp_path / "short", compress=False)
    path = tmp_path / "short" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_digits(tmp_path / "short")

    write_fake_mnist(tmp_path / "count", compress=False)
    write_idx(tmp_path / "count" / "train-labels-idx1-ubyte", np.zeros(150), _LABEL_MAGIC, False)
    with pytest.raises(ValueError, match="200 images but 150 labels"):
        load_digits(tmp_path / "count")


def test_bad_standard_test_file_raises(tmp_path):
    with pytest.raises(ValueError, match="mnist_test_seq.npy does not exist"):
        StandardMovingMNIST(str(tmp_path / "mnist_test_seq.npy"))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((20, 64, 64), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"expected 4 \(T, N, H, W\)"):
        StandardMovingMNIST(str(wrong))
    np.save(wrong, np.full((20, 2, 64, 64), 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        StandardMovingMNIST(str(wrong))


def test_render_rejects_trajectories_off_the_canvas():
    images = torch.ones(1, 1, 14, 14)
    with pytest.raises(ValueError, match="leave the 32x32 canvas"):
        render_digits(images, torch.full((1, 3, 1, 2), 19.0), 32)
    with pytest.raises(ValueError, match=r"\(B, T, D, 2\)"):
        render_digits(images, torch.zeros(1, 3, 2), 32)


@pytest.mark.parametrize(("num_train", "num_test", "sizes"), [(0, 0, "train 0, val 0, test 0"),
                                                               (10, 10, "train 10, val 0, test 10")])
def test_mnist_files_too_small_for_the_pools_are_one_clear_error(tmp_path, capsys, num_train, num_test, sizes):
    """Valid headers but 0 or 10 images: the generator would fail with an IndexError on an empty pool."""
    from training.train import main as train

    write_fake_mnist(tmp_path / "small", compress=False, num_train=num_train, num_test=num_test)
    with pytest.raises(ValueError, match=f"too few digits for the train/val/test pools: {sizes} digits") as caught:
        load_digits(tmp_path / "small")
    assert "each split needs at least 1" in str(caught.value) and "6 images of one class" in str(caught.value)
    # The command line says the same in one line, exit status 2, before creating the run folder.
    status = train(["--model", "baseline", "--name", "run", "--checkpoint-dir", str(tmp_path / "runs"),
                    "--mnist-root", str(tmp_path / "small"), "--device", "cpu", "--image-size", "32"])
    error = capsys.readouterr().err
    assert status == 2 and "Traceback" not in error and not (tmp_path / "runs").exists()
    assert f"argument --mnist-root: MNIST files in {tmp_path / 'small'} hold too few digits" in error.splitlines()[-1]


def test_the_smallest_mnist_files_that_fill_every_pool_make_videos(tmp_path):
    write_fake_mnist(tmp_path / "six", compress=False, num_train=6, num_test=1)
    write_idx(tmp_path / "six" / "train-labels-idx1-ubyte", np.zeros(6), _LABEL_MAGIC, False)  # one class
    digits = load_digits(tmp_path / "six")
    assert [len(digits.pool(split)) for split in ("train", "val", "test")] == [5, 1, 1]
    loaders = get_moving_mnist_dataloaders(2, 2, 2, 2, mnist_root=str(tmp_path / "six"), **TINY)
    assert all(torch.isfinite(next(iter(loader))["video"]).all() for loader in loaders)


def test_with_frames_renders_the_same_videos_longer():
    dataset = MovingMNIST("val", 6, MovingMNISTConfig(num_frames=4), seed=3)
    longer = dataset.with_frames(9, num_videos=3)
    assert len(longer) == 3 and longer.config.num_frames == 9 and longer.digits is dataset.digits
    assert (longer.split, longer.seed) == ("val", 3) and len(dataset.with_frames(2)) == 6
    first, more = dataset.generate(range(3)), longer.generate(range(3))
    assert more["video"].shape[1] == 9 and torch.equal(more["video"][:, :4], first["video"])
    assert torch.equal(more["labels"], first["labels"])
