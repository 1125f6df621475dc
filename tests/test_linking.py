"""Every data setting reaches every part: the model follows its data (slots, image size), explicit conflicts
and useless options are one line, the demo's judges are those of the data it evaluates, and the training
CLI is generated from the config fields with one translator.

Runs are tiny (32x32, 4 frames, width 4, 8 videos of batch 4) and on one CPU thread.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import demo
from data import DataConfig, MovingMNISTConfig
from models import MODELS
from models.checkpoint import BEST, load_checkpoint
from training.cli import build_parser
from training.config import ConfigError, TrainConfig
from training.linking import data_mismatches, link_configs
from training.options import RESUME_MAY_CHANGE, make_configs
from training.train import main, train

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")

TINY_DISENTANGLED = ["--device", "cpu", "--quiet", "--batch-size", "4", "--train-size", "8", "--val-size", "4",
                     "--test-size", "4", "--image-size", "32", "--frames", "4", "--width", "4", "--motion-dim", "8",
                     "--lstm-hidden", "8", "--model-option", "feature_dim=16", "--epochs", "1"]


@pytest.mark.parametrize("digits", [1, 3])
def test_a_runs_saved_model_has_one_slot_per_digit_with_no_extra_flag(tmp_path, digits):
    argv = ["--model", "disentangled", "--name", "run", "--checkpoint-dir", str(tmp_path), "--digits", str(digits),
            *TINY_DISENTANGLED]
    assert main(argv) == 0
    checkpoint = load_checkpoint(tmp_path / "run" / BEST)
    assert checkpoint["data_config"]["num_digits"] == digits
    assert checkpoint["model_config"]["slots"] == digits
    # content_dim 128 is a multiple of 1 but not of 3: rounded up, and the log says so in one line
    assert checkpoint["model_config"]["content_dim"] == (129 if digits == 3 else 128)
    log = (tmp_path / "run" / "train.log").read_text()
    assert ("content_dim 128 -> 129" in log) == (digits == 3)


@pytest.mark.parametrize(("options", "message"), [
    (["--digits", "3", "--model-option", "slots=2"], "--model-option slots=2 contradicts --digits 3"),
    (["--model-option", "slots=3"], "--model-option slots=3 contradicts --digits 2"),
    (["--digits", "3", "--content-dim", "8"], "content_dim (8) must be a multiple of slots (3)"),
    (["--model-option", "image_size=64"], "--model-option image_size=64 contradicts --image-size 32"),
    (["--digit-size", "20", "--model-option", "glimpse_size=16"],
     "--model-option glimpse_size=16 cannot hold a digit of --digit-size 20: use a glimpse_size of at least 32"),
])
def test_a_model_option_that_contradicts_the_data_is_one_line(tmp_path, capsys, options, message):
    argv = ["--model", "disentangled", "--name", "run", "--checkpoint-dir", str(tmp_path), *TINY_DISENTANGLED]
    assert main(argv + options) == 2
    error = capsys.readouterr().err
    assert message in error.strip().splitlines()[-1] and "Traceback" not in error
    assert not (tmp_path / "run").exists()


def test_options_without_effect_are_noted_and_unset_values_follow_the_data():
    model_config, _, data_config, notes = make_configs("disentangled", "run", {
        "num_digits": 3, "image_size": 32, "model_option": ["motion_blur=5", "content_pooling=global"]})
    assert (model_config.slots, model_config.image_size, data_config.video.digit_size) == (3, 32, 14)
    assert any(note.startswith("--model-option motion_blur=5 has no effect under architecture='keypoints'")
               for note in notes)
    assert any("content_pooling=global has no effect" in note for note in notes)
    _, _, _, notes = make_configs("disentangled", "run", {"model_option": ["architecture=pooled", "glimpse_size=48"]})
    assert notes == ["--model-option glimpse_size=48 has no effect under architecture='pooled': it applies only "
                     "under the object architectures ['slots', 'keypoints']"]
    _, _, _, notes = make_configs("disentangled", "run", {"model_option": ["architecture=keypoints",
                                                                           "track_alignment=0"]})
    assert notes == ["--model-option track_alignment=0 has no effect under architecture='keypoints': it applies "
                     "only under architecture='slots' (the hand tracker)"]
    _, _, _, notes = make_configs("disentangled", "run", {"model_option": ["architecture=slots",
                                                                           "localiser_lr_scale=5"]})
    assert notes == ["--model-option localiser_lr_scale=5.0 has no effect under architecture='slots': it applies "
                     "only under architecture='keypoints' (the learned localiser, the default)"]
    model_config, _, _, notes = make_configs("disentangled", "run", {"num_digits": 3,
                                                                     "model_option": ["architecture=average"]})
    assert model_config.slots == 2 and notes == []  # a conv architecture has no objects to link


def test_the_library_refuses_a_model_that_does_not_fit_its_data(tmp_path):
    data_config = DataConfig(train_size=8, val_size=4, test_size=4,
                             video=MovingMNISTConfig(image_size=32, num_digits=3, num_frames=4))
    model_config = MODELS["disentangled"].config_class(image_size=32, width=4, content_dim=6)
    train_config = TrainConfig(experiment_name="run", model="disentangled", epochs=1, batch_size=4,
                               checkpoint_dir=str(tmp_path))
    assert data_mismatches("disentangled", model_config, data_config) == ["slots 2 (the data: --digits 3)"]
    with pytest.raises(ConfigError, match="does not fit the data config: slots 2"):
        train("disentangled", model_config, train_config, data_config)
    assert not (tmp_path / "run").exists()
    linked, notes = link_configs("disentangled", model_config, data_config)
    assert linked.slots == 3 and linked.content_dim == 6 and not notes


def test_digit_size_is_derived_by_the_data_config_alone():
    assert MovingMNISTConfig().digit_size == 28 and MovingMNISTConfig(image_size=32).digit_size == 14
    assert MovingMNISTConfig(image_size=32, digit_size=20).digit_size == 20
    assert DataConfig.from_dict({"image_size": 96}).video.digit_size == 42  # an old checkpoint without one
    callers = [path.relative_to(REPO).as_posix() for path in REPO.rglob("*.py")
               if ".venv" not in path.parts and path.parent.name != "tests"
               and re.search(r"\bdefault_digit_size\(", path.read_text())]
    assert callers == ["data/config.py"]


def test_the_training_cli_is_generated_from_the_config_fields():
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    for flag in ("--epochs", "--batch-size", "--lr", "--grad-clip", "--scheduler", "--kl-warmup-epochs",
                 "--max-minutes", "--amp", "--device", "--seed", "--num-workers", "--deterministic",
                 "--checkpoint-dir", "--train-size", "--val-size", "--test-size", "--frames", "--image-size",
                 "--digit-size", "--digits", "--fixed-train-set", "--mnist-root", "--beta", "--recon-loss",
                 "--latent-dim", "--content-dim", "--motion-dim", "--lstm-hidden", "--width", "--model-option",
                 "--model", "--name", "--resume", "--overwrite", "--quiet"):
        assert flag in flags
    assert RESUME_MAY_CHANGE == {"epochs", "amp", "deterministic", "mnist_root", "max_minutes", "device",
                                 "num_workers", "checkpoint_dir"}
    args = build_parser().parse_args(["--model", "lstm", "--name", "x"])
    defaults = DataConfig().to_dict() | {item.name: item.default for item in dataclasses.fields(TrainConfig)}
    for dest in ("epochs", "lr", "num_frames", "num_digits", "image_size", "fresh_train", "mnist_root", "seed"):
        assert getattr(args, dest) == defaults[dest], dest
    assert args.digit_size is None  # derived by the data config


def test_a_resume_changes_only_what_a_resume_may(tmp_path):
    base = make_configs("lstm", "run", {"image_size": 32, "max_minutes": 5.0, "device": "cpu"})[:3]
    model_config, train_config, data_config, notes = make_configs(
        "lstm", "run", {"epochs": 7, "mnist_root": "elsewhere", "image_size": 32}, base, resume=True)
    assert train_config.epochs == 7 and data_config.mnist_root == "elsewhere"
    assert train_config.max_minutes is None and train_config.device == "auto"  # this invocation's defaults
    assert notes == ["--mnist-root changed from None to elsewhere"] and model_config == base[0]
    with pytest.raises(ConfigError, match=r"--digits 3 \(the run has 2\); --width 8 \(the run has 32\)"):
        make_configs("lstm", "run", {"num_digits": 3, "width": 8}, base, resume=True)


TINY_DEMO = ["--steps-per-model", "4", "--train-size", "8", "--val-size", "4", "--test-size", "8", "--frames", "4",
             "--image-size", "32", "--width", "4", "--batch-size", "4", "--lstm-hidden", "8", "--num-samples", "2",
             "--amp", "off", "--threads", "1"]


def test_the_demos_judges_are_trained_for_the_data_each_evaluation_uses():
    args = demo.build_parser().parse_args(TINY_DEMO + ["--digits", "1", "--train-args", "--digits 3 --frames 6"])
    runs = demo.run_names(2)
    configs = demo.judge_data_configs(args, runs)
    assert len(configs) == 1
    video = configs[0].video
    assert (video.num_digits, video.num_frames, video.image_size, video.digit_size) == (3, 6, 32, 14)
    for model, seed, name in runs:
        model_config, _, data_config, _ = demo.requested_configs(args, model, seed, name, amp=False)
        assert data_config.video == video and data_config.mnist_root == configs[0].mnist_root
        if model == "disentangled":
            assert model_config.slots == 3
    args = demo.build_parser().parse_args(TINY_DEMO + ["--digits", "1"])
    assert demo.judge_data_configs(args, runs)[0].video.num_digits == 1
    assert demo.requested_configs(args, "disentangled", 42, "run", amp=False)[0].slots == 1


def test_the_demo_notes_options_without_effect_and_keeps_its_step_budget():
    argv = TINY_DEMO + ["--epochs", "3", "--train-args", "--batch-size 2 --model-option norm=none"]
    args = demo.build_parser().parse_args(argv)
    notes = demo.option_notes(args, argv, demo.run_names(1))
    assert notes[0].startswith("--epochs 3 has no effect: --steps-per-model 4 sets the budget (2 epochs)")
    assert any(note.startswith("baseline: --train-args --batch-size 2 makes an epoch 4 steps instead of 2: "
                               "--steps-per-model 4 is 1 epochs") for note in notes)
    _, train_config, data_config, _ = demo.requested_configs(args, "lstm", 42, "run", amp=False)
    assert train_config.epochs * (data_config.train_size // train_config.batch_size) == 4  # 4 steps, as asked
    assert demo.option_notes(demo.build_parser().parse_args(TINY_DEMO), TINY_DEMO, demo.run_names(1)) == []


def test_the_demo_help_says_only_what_is_true():
    text = " ".join(demo.build_parser().format_help().split())
    assert "within 10%" not in text and "--digits N" in text


def test_a_checkpoint_from_before_a_field_reads_as_the_model_it_holds():
    """A field added later (``legacy_values``): a stored config without it builds the model it was trained
    as, and a run asked for with the new default differs from it only where the field has an effect."""
    import dataclasses

    from evaluation.trained_runs import config_differences
    from models.checkpoint import RunRecord
    from models.disentangled_vae import DisentangledVAEConfig
    from training.config import TrainConfig

    for architecture, differs in (("slots", True), ("keypoints", False)):
        asked = DisentangledVAEConfig(architecture=architecture)
        assert asked.track_alignment == 2
        stored = dataclasses.asdict(asked)
        stored.pop("track_alignment")  # written before the field existed: trained without alignment
        data = DataConfig()
        checkpoint = {"model_name": "disentangled", "model_config": stored,
                      "train_config": dataclasses.asdict(TrainConfig(experiment_name="run", model="disentangled")),
                      "data_config": data.to_dict()}
        assert RunRecord.of(checkpoint).model_config["track_alignment"] == 0
        differences = config_differences(checkpoint, "disentangled", asked, TrainConfig(experiment_name="run", model="disentangled"), data)
        assert ("track_alignment 0 (asked 2)" in differences) == differs
    # The localiser's rate (trained at --lr before the field) and its appearance query (none before), likewise.
    for field, old, new in (("localiser_lr_scale", 1.0, 10.0), ("localiser_appearance", 0.0, 4.0)):
        for architecture, differs in (("keypoints", True), ("slots", False)):
            asked = DisentangledVAEConfig(architecture=architecture)
            stored = dataclasses.asdict(asked)
            stored.pop(field)  # written before the field existed
            checkpoint = {"model_name": "disentangled", "model_config": stored,
                          "train_config": dataclasses.asdict(TrainConfig(experiment_name="run", model="disentangled")),
                          "data_config": DataConfig().to_dict()}
            assert RunRecord.of(checkpoint).model_config[field] == old
            differences = config_differences(checkpoint, "disentangled", asked,
                                             TrainConfig(experiment_name="run", model="disentangled"), DataConfig())
            assert (f"{field} {old} (asked {new})" in differences) == differs, differences


def test_the_default_glimpse_follows_small_frames_and_too_small_frames_name_the_option_to_change():
    """Issue 33, item 9: ``--image-size 16`` trains the default Disentangled VAE (its default glimpse of 32
    becomes 16, with a note) instead of an error about a glimpse_size the user never set."""
    small = DataConfig(video=MovingMNISTConfig(image_size=16, num_frames=4))
    config, notes = link_configs("disentangled", {}, small)
    assert config.glimpse_size == 16 and any(note.startswith("glimpse_size 32 -> 16") for note in notes)
    MODELS["disentangled"].from_config(config)  # it builds
    with pytest.raises(ConfigError, match="glimpse_size must be"):  # a glimpse the user set stays theirs
        link_configs("disentangled", {"glimpse_size": 32}, small, given={"glimpse_size"})
    with pytest.raises(ConfigError, match="use --image-size 16 or more, or --model-option architecture=average"):
        link_configs("disentangled", {}, DataConfig(video=MovingMNISTConfig(image_size=8, num_frames=4)))
    assert link_configs("disentangled", {}, DataConfig(video=MovingMNISTConfig(image_size=64)))[0].glimpse_size == 32
