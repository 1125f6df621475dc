"""Data benchmark: videos per second of the batched Moving MNIST generator vs a per-video, per-frame loop.

Single process, one thread, standard settings (64x64, 2 digits of 28x28, 20 frames). The loop baseline is
the way most public generators are written: for each video draw its parameters, then for each frame and
digit paste the digit with ``np.maximum``. Both draw from the same embedded digit pool.

    python -m benchmarks.bench_data [--batch-size 32] [--batches 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import format_table, time_call
from data import MovingMNIST, MovingMNISTConfig


def loop_generator(images: np.ndarray, num_videos: int, config: MovingMNISTConfig, rng: np.random.Generator):
    """Reference generator: a Python loop per video, per frame and per digit."""
    size, travel = config.digit_size, config.travel
    videos = np.zeros((num_videos, config.num_frames, config.image_size, config.image_size), np.float32)
    for video in videos:
        for _ in range(config.num_digits):
            digit = images[rng.integers(len(images))].astype(np.float32) / 255.0
            position = rng.uniform(0, travel, size=2)
            angle = rng.uniform(0, 2 * np.pi)
            velocity = rng.uniform(config.min_speed, config.max_speed) * np.array([np.cos(angle), np.sin(angle)])
            for frame in video:
                x, y = np.rint(position).astype(int)
                np.maximum(frame[y : y + size, x : x + size], digit, out=frame[y : y + size, x : x + size])
                position = position + velocity
                for axis in range(2):
                    if position[axis] < 0:
                        position[axis], velocity[axis] = -position[axis], -velocity[axis]
                    elif position[axis] > travel:
                        position[axis], velocity[axis] = 2 * travel - position[axis], -velocity[axis]
    return videos


def run(batch_size: int = 32, batches: int = 40) -> list[dict]:
    """Measure both generators; returns one row per generator."""
    torch.set_num_threads(1)
    dataset = MovingMNIST("train", batch_size * batches, seed=0)
    images = dataset.digits.images[dataset.pool]
    counter = iter(range(10**9))

    def batched():
        start = next(counter) * batch_size
        dataset.generate(range(start, start + batch_size))

    rng = np.random.default_rng(0)
    batched_seconds = time_call(batched, repeats=batches, warmup=3)
    loop_seconds = time_call(lambda: loop_generator(images, batch_size, dataset.config, rng), repeats=5)
    rows = [
        {"generator": "batched (data.MovingMNIST)", "ms per batch": batched_seconds * 1e3,
         "videos/s": batch_size / batched_seconds, "speed-up": loop_seconds / batched_seconds},
        {"generator": "per-video, per-frame loop", "ms per batch": loop_seconds * 1e3,
         "videos/s": batch_size / loop_seconds, "speed-up": 1.0},
    ]
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32, help="videos per generated batch (default: 32)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches of the batched generator")
    args = parser.parse_args(argv)
    rows = run(args.batch_size, args.batches)
    print(f"Moving MNIST generation, 1 thread, batch {args.batch_size}, 20 frames of 64x64, 2 digits")
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
