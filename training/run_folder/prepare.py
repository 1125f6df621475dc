"""The run folder: what a run writes there, who may use it, and whether it holds the run one asks for.

A fresh start refuses a folder that holds an earlier run's checkpoints (unless told to overwrite); a
resume reads ``last.pt`` (:func:`resume_point`), checks that it is the run ``config.json`` records and
remembers the file as read, so that :func:`prepare_run_dir`, once the folder's lock is held, can tell
whether another process wrote it meanwhile.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.checkpoint import (
    BEST,
    LAST,
    CheckpointError,
    Key,
    RunFiles,
    RunRecord,
    load_checkpoint,
    non_finite_weights,
)
from training.config import ConfigError
from training.options import RESUME_MAY_CHANGE
from training.run_folder.lock import RunLock

OUTPUTS = RunFiles.ALL


@dataclass
class ResumePoint:
    """The ``last.pt`` a resumed run continues, as read before the run folder was locked.

    Attributes:
        checkpoint: the loaded ``last.pt``.
        identity: the file's (inode, size, mtime), to see it change.
        best_on_disk: best_metric of a ``best_model.pt`` newer than ``last.pt`` (else infinity).
        best_note: a note saying so, or None.
    """

    checkpoint: dict[str, Any]
    identity: tuple[int, int, int]
    best_on_disk: float = math.inf
    best_note: str | None = None


def resume_point(run_dir: Path) -> ResumePoint:
    """Read the run folder's ``last.pt`` to resume it.

    Raises:
        ConfigError: no ``last.pt``, an unreadable one, one of another run (:func:`check_belongs_to_run`) or
            one with non-finite weights.
    """
    source = run_dir / LAST
    if not source.is_file():
        raise ConfigError(f"--resume: there is no {source} to resume from; start the run without --resume")
    identity = _file_identity(source)
    try:
        checkpoint = load_checkpoint(source, map_location="cpu")
    except (CheckpointError, FileNotFoundError) as error:
        raise ConfigError(f"--resume: {error}") from None
    check_belongs_to_run(checkpoint, source)
    problem = non_finite_weights(RunRecord.of(checkpoint).model_state)
    if problem is not None:  # written by a version that saved diverged weights
        raise ConfigError(f"--resume: {source} holds non-finite weights ({problem}); copy {BEST} over it "
                          "to resume from the best epoch, or start over with --overwrite")
    best_on_disk, best_note = _newer_best(checkpoint, run_dir)
    return ResumePoint(checkpoint, identity, best_on_disk, best_note)


def lock_existing_run_folder(run_dir: Path) -> RunLock | None:
    """Lock a run folder that exists already, before anything reads it (a new one is locked once created).

    Returns:
        The held lock, or None when there is no folder yet or no lock file can be made in it (a read-only
        folder: :func:`prepare_run_dir` then reports that it cannot be written).

    Raises:
        RunFolderBusy: another process holds the folder.
    """
    if not run_dir.is_dir():
        return None
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except OSError:
        return None
    return lock


def refuse_existing_run(run_dir: Path) -> None:
    """Refuse a fresh start (without ``--overwrite``) in a run folder that holds checkpoints.

    Raises:
        ConfigError: ``last.pt`` or ``best_model.pt`` exists there.
    """
    existing = [name for name in (LAST, BEST) if (run_dir / name).exists()]
    if existing:
        raise ConfigError(
            f"{run_dir} already holds {' and '.join(existing)} of an earlier run; continue it with --resume, "
            "start over with --overwrite (deletes it), or pick another --name"
        )


def check_belongs_to_run(checkpoint: dict[str, Any], source: Path) -> None:
    """Check that a ``last.pt`` to resume is the run the folder's ``config.json`` records.

    What a run never changes is compared: the model and its config, the data config but ``mnist_root``, the
    training config but the options a resume may change; fields only one side has (written by another
    version of the code) are skipped. A folder without ``config.json`` is not checked.

    Raises:
        ConfigError: ``config.json`` is unreadable or describes another run (one line naming both files).
    """
    record_path = source.parent / RunFiles.CONFIG
    if not record_path.is_file():
        return
    try:
        record = json.loads(record_path.read_text())
        if not isinstance(record, dict):
            raise ValueError(f"it holds a {type(record).__name__}, not an object")
    except (OSError, ValueError) as error:
        raise ConfigError(f"--resume: cannot read {record_path} to check that {source} is this run's "
                          f"checkpoint ({error}); restore it, or delete it to resume from {source} alone") from None
    # Through JSON, as config.json was written (tuples become lists).
    saved = json.loads(json.dumps(RunRecord.of(checkpoint).configs(), default=str))
    ignored = {Key.DATA_CONFIG: RESUME_MAY_CHANGE, Key.TRAIN_CONFIG: RESUME_MAY_CHANGE | {"experiment_name"}}
    differences = []
    for key, value in saved.items():
        recorded = record.get(key)
        if isinstance(value, dict) and isinstance(recorded, dict):
            differences += [f"{key}.{name} {value.get(name)!r} vs {recorded.get(name)!r}"
                            for name in sorted((set(value) & set(recorded)) - ignored.get(key, set()))
                            if value.get(name) != recorded.get(name)]
        elif value != recorded:
            differences.append(f"{key} {value!r} vs {recorded!r}")
    if differences:
        shown = "; ".join(differences[:3]) + (f"; ... ({len(differences) - 3} more)" if len(differences) > 3 else "")
        raise ConfigError(
            f"--resume: {source} is not the checkpoint of the run that {record_path} describes ({shown}); "
            "put that run's last.pt back, or start over with --overwrite"
        )


def _newer_best(checkpoint: dict[str, Any], run_dir: Path) -> tuple[float, str | None]:
    """The best_metric of a ``best_model.pt`` written after ``last.pt`` (a run stopped between the two
    writes of an epoch), else infinity: the resumed run must not replace it with a worse model; and a note
    saying so."""
    best_path = run_dir / BEST
    if not best_path.is_file():
        return math.inf, None
    try:
        best = load_checkpoint(best_path, map_location="cpu")
    except (CheckpointError, FileNotFoundError):
        return math.inf, None  # a damaged best_model.pt: the next best epoch replaces it
    best, last = RunRecord.of(best), RunRecord.of(checkpoint)
    same_run = best.model_name == last.model_name and best.model_config == last.model_config
    if not same_run or int(best.step if best.step is not None else -1) <= int(last.step or 0):
        return math.inf, None
    note = (f"{best_path} (epoch {best.epoch}) is newer than {LAST} (epoch {last.epoch}): "
                 "the run stopped between the two writes; that epoch is trained again, and best_model.pt is "
            "only replaced by a lower validation loss")
    return float(best.best_metric if best.best_metric is not None else math.inf), note


def _file_identity(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_ino, status.st_size, status.st_mtime_ns


def prepare_run_dir(run_dir: Path, lock: RunLock, resume: ResumePoint | None, overwrite: bool) -> None:
    """Create the run folder, lock it, check it is still as planned, and clear an old run's outputs for a
    fresh start.

    Args:
        run_dir: the run folder.
        lock: its lock (taken here unless already held).
        resume: the ``last.pt`` a resumed run read (None for a fresh start).
        overwrite: a fresh start may replace an earlier run's outputs.

    Raises:
        ConfigError: the folder cannot be created or written, or changed since it was planned.
        RunFolderBusy: another process holds the folder's lock.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test.", delete=True):
            pass
        lock.acquire()
    except OSError as error:
        raise ConfigError(f"cannot write to the run folder {run_dir}: {error.strerror or error}") from None
    # Under torchrun, or for a folder created meanwhile, the plan read the folder before the lock was
    # taken: a run that ended in between may have written it.
    if resume is not None:
        if not (run_dir / LAST).is_file() or _file_identity(run_dir / LAST) != resume.identity:
            raise ConfigError(f"--resume: {run_dir / LAST} changed while this run was starting (another "
                              "process wrote it); run the command again")
    elif not overwrite:
        refuse_existing_run(run_dir)
    for stale in run_dir.glob(".*.tmp"):  # left by a save that was killed (atomic saves never leave more)
        stale.unlink(missing_ok=True)
    if resume is None:
        for name in OUTPUTS:
            path = run_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
