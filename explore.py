"""The swap explorer: pick the content video and the motion video from a grid of test videos and watch the swap.

    python explore.py --checkpoint checkpoints/disentangled_vae

starts a local server on 127.0.0.1 (nothing is fetched from elsewhere; the page works offline), prints its URL
and opens it in a browser. On the page: click a grid video as CONTENT and one as MOTION and the swap
``model.swap(content, motion)`` plays; two sliders interpolate content and motion separately towards a second
pick; two buttons draw a new content or a new motion code from the prior (``model.sample_factors``). The grid's
codes are computed once at start-up, so a swap only decodes. Works for every model of the registry: a model
without a content/motion split swaps with the implicit split of models/base.py, and the page says so.

A checkpoint that does not exist or does not load, a port in use or a bad option prints one line on stderr
and exits with status 2 (as evaluate.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import webbrowser
from pathlib import Path

import torch

from evaluation.pipeline import one_line
from evaluation.trained_runs import checkpoint_data_config, test_loader
from models.checkpoint import BEST, LAST, CheckpointError, load_model
from utils.cli import device_name, non_negative_int, positive_int
from utils.devices import resolve_device
from utils.explorer.server import ExplorerServer
from utils.explorer.session import ExplorerSession

PROG = "explore.py"
EXIT_USAGE = 2  # as evaluate.py
HOST = "127.0.0.1"  # loopback only: the page is for the person at this machine
MAX_VIDEOS = 100


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A local web page to swap content and motion between test videos.",
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     epilog="Example:\n  python explore.py --checkpoint checkpoints/disentangled_vae\n\n"
                            "Exit status: 0 when stopped with Ctrl-C, 2 for a missing or bad checkpoint, a port "
                            "in use or a bad option.")
    parser.add_argument("--checkpoint", required=True, metavar="RUN",
                        help="a run folder (its best_model.pt, else last.pt) or a .pt checkpoint file")
    parser.add_argument("--port", type=non_negative_int, default=8765,
                        help="port on 127.0.0.1 (default: 8765; 0 picks a free one)")
    parser.add_argument("--videos", type=positive_int, default=16, metavar="N",
                        help=f"test videos in the grid (default: 16, at most {MAX_VIDEOS})")
    parser.add_argument("--seed", type=non_negative_int, default=None,
                        help="which test videos, and the seed of the prior draws (default: the checkpoint's data seed)")
    parser.add_argument("--device", type=device_name, default="cpu",
                        help="auto, cpu, cuda[:N] or mps (default: cpu, fast enough for one swap at a time)")
    parser.add_argument("--no-browser", action="store_true", help="print the URL only; open no browser")
    return parser


def checkpoint_file(run: str | Path) -> Path:
    """The checkpoint of a run folder (``best_model.pt``, else ``last.pt``), or ``run`` itself."""
    run = Path(run)
    if run.is_dir():
        for name in (BEST, LAST):
            if (run / name).is_file():
                return run / name
    return run  # load_model says what is wrong with it


def load_session(run: str | Path, videos: int, seed: int | None, device: torch.device) -> ExplorerSession:
    """Load a run's model, rebuild its test set from its data config and encode the first ``videos`` videos.

    Raises:
        FileNotFoundError, CheckpointError, ValueError: with a one-line message.
    """
    path = checkpoint_file(run)
    try:
        model, checkpoint = load_model(path, device)
    except (RuntimeError, OSError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise CheckpointError(f"cannot load {path}: {one_line(error)}") from error
    data_config = checkpoint_data_config(checkpoint, model, test_size=videos, seed=seed)
    dataset = test_loader(data_config, batch_size=videos).dataset
    grid = dataset[list(range(videos))]["video"].to(device)  # (N, T, C, H, W)
    return ExplorerSession(model, grid, seed=data_config.seed)


def _headless() -> bool:
    """A Linux session without a display (ssh, a container): a browser started there could only fail."""
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    """Serve the explorer until Ctrl-C; returns the exit status (0, or 2 for bad inputs)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, message already printed)
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    if args.videos > MAX_VIDEOS:
        print(f"{PROG}: error: --videos must be at most {MAX_VIDEOS}, got {args.videos}", file=sys.stderr)
        return EXIT_USAGE
    try:
        device = resolve_device(args.device)
        server = ExplorerServer(HOST, args.port)  # binds now: a port in use fails before the model loads
    except ValueError as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"{PROG}: error: cannot listen on {HOST}:{args.port}: {error.strerror or one_line(error)} (is another "
              "explorer running? pick another --port)", file=sys.stderr)
        return EXIT_USAGE
    with server:
        try:
            server.attach(load_session(args.checkpoint, args.videos, args.seed, device))
        except (FileNotFoundError, CheckpointError, ValueError) as error:
            print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"[explore] {server.session.describe()['model']} from {checkpoint_file(args.checkpoint)}, "
              f"{args.videos} test videos; open {server.url} (Ctrl-C stops)", flush=True)
        if not args.no_browser:
            if _headless():
                print("[explore] no display here: open the URL in a browser on this machine", flush=True)
            else:
                webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("[explore] stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
