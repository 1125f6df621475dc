"""The demo under bad options, stops, interrupts, damaged runs and full disks (issue 22): one line naming the
problem and the fix, the documented exit status, problems found before any training, and a stopped demo
continued by running the same command again."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil

import pytest

import demo
from models.checkpoint import BEST, LAST, atomic_torch_save, load_checkpoint
from training.fit_prior import stale_prior
from training.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--steps-per-model", "2", "--train-size", "8", "--val-size", "4", "--test-size", "5", "--frames", "4",
        "--image-size", "32", "--width", "4", "--batch-size", "4", "--lstm-hidden", "8", "--num-samples", "2",
        "--no-judges", "--amp", "off", "--threads", "1", "--prediction-videos", "2", "--prediction-horizon", "20",
        "--train-args",
        "--model-option feature_dim=8 --latent-dim 4 --content-dim 4 --motion-dim 4"]


def run_demo(tmp_path, *more) -> tuple[int, str, str]:
    argv = TINY + ["--checkpoint-dir", str(tmp_path / "checkpoints"), "--out", str(tmp_path / "results"), *more]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = demo.main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


def one_line(error: str) -> str:
    assert error.count("\n") == 1 and "Traceback" not in error, error
    return error.strip()


@pytest.fixture(scope="module")
def stopped_then_continued(tmp_path_factory):
    """A demo stopped (SIGINT) after the first step of its first run, which leaves last.pt and no
    best_model.pt; then the same command again, interrupted (Ctrl-C) when its evaluation starts."""
    root = tmp_path_factory.mktemp("demo")
    real_step = Trainer.train_step
    with pytest.MonkeyPatch.context() as patch:
        def stop_after_the_first_step(self, batch):
            self.request_stop("SIGINT")  # what the signal handler does
            return real_step(self, batch)

        patch.setattr(Trainer, "train_step", stop_after_the_first_step)
        first = run_demo(root)
    first_last = load_checkpoint(root / "checkpoints" / "baseline_vae" / LAST)
    with pytest.MonkeyPatch.context() as patch:
        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        patch.setattr(demo, "evaluate", interrupted)
        second = run_demo(root)
    return root, first, first_last, second


def test_a_stopped_demo_says_how_to_continue_and_the_same_command_continues_it(stopped_then_continued):
    root, (code, _, error), first_last, (code_again, out_again, _) = stopped_then_continued
    run = root / "checkpoints" / "baseline_vae"
    assert code == 130
    assert one_line(error).split(" ", 1)[1] == (f"SIGINT: saved {run / LAST} at epoch 0 + 1 batches, step 1; run "
                                                "the same demo.py command again to continue")
    assert first_last["step"] == 1
    # The same command continues that run (it does not refuse it, nor start it over) and trains the others.
    assert code_again == 130
    assert f"continuing baseline_vae (baseline, seed 42) from {run / LAST} (epoch 0, step 1)" in out_again
    for name in ("baseline_vae", "lstm_vae", "disentangled_vae"):
        checkpoint = load_checkpoint(root / "checkpoints" / name / LAST)
        assert checkpoint["step"] == 2 and checkpoint["epoch"] == 1
        assert (root / "checkpoints" / name / BEST).is_file()


def test_ctrl_c_during_the_demos_evaluation_is_one_line(stopped_then_continued):
    root, _, _, (code, _, error) = stopped_then_continued
    assert code == 130
    assert one_line(error).startswith(f"demo.py: interrupted; the runs in {root / 'checkpoints'} keep their last "
                                      "checkpoints and every file in")


def copy_runs(stopped_then_continued, tmp_path):
    shutil.copytree(stopped_then_continued[0] / "checkpoints", tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_a_truncated_last_beside_an_intact_best_is_one_line_before_any_work(stopped_then_continued, tmp_path):
    last = copy_runs(stopped_then_continued, tmp_path) / "lstm_vae" / LAST
    last.write_bytes(last.read_bytes()[:1000])
    code, out, error = run_demo(tmp_path)
    assert code == 2
    line = one_line(error)
    assert line.startswith(f"demo.py: error: cannot use the run in {last.parent}: ") and str(last) in line
    assert "--retrain" in line and "training" not in out and not (tmp_path / "results").exists()


def test_a_full_disk_during_the_demos_evaluation_is_one_line_and_exit_3(stopped_then_continued, tmp_path,
                                                                       monkeypatch):
    copy_runs(stopped_then_continued, tmp_path)
    target = tmp_path / "results" / "eval" / "baseline_vae_samples.png"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(demo, "evaluate", full_disk)
    code, out, error = run_demo(tmp_path)
    assert code == 3 and out.count("reusing") == 4  # the three models and the hand tracker
    assert one_line(error).startswith(f"demo.py: error: cannot write {target}: No space left on device; ")


@pytest.mark.parametrize(("options", "message"), [
    (["--train-args", "--checkpoint-dir elsewhere"], "--train-args: --checkpoint-dir is an option of demo.py"),
    (["--train-args", "--device cuda"], "--train-args: --device is an option of demo.py"),
    (["--test-size", "3"], "--test-size must be at least 5"),
    (["--out", "{tmp}/a_file"], "is a file, not a folder"),
    (["--out", "{tmp}/a_file/below"], "is a file, not a folder"),
    (["--checkpoint-dir", "/dev/null/x"], "--checkpoint-dir /dev/null/x: /dev/null is a file, not a folder"),
])
def test_options_that_would_break_the_run_are_refused_before_any_work(tmp_path, options, message):
    (tmp_path / "a_file").write_text("keep me")
    code, out, error = run_demo(tmp_path, *[option.replace("{tmp}", str(tmp_path)) for option in options])
    assert code == 2 and message in one_line(error) and error.startswith("demo.py: error: ")
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results").exists()
    assert not (tmp_path / "elsewhere").exists() and (tmp_path / "a_file").read_text() == "keep me"


def test_the_readme_says_on_which_test_videos_each_seed_is_judged():
    """Issue 22, item 9: each seed's runs are evaluated on their own seed's test videos (not "the same 500
    test videos" for every seed), and the README says so."""
    from pathlib import Path

    args = demo.build_parser().parse_args(TINY)
    assert demo.eval_config(args).seed is None  # evaluate() then takes the checkpoint's own data seed
    seeds = {seed: demo.requested_configs(args, "baseline", seed, "run", amp=False)[2].seed for seed in (42, 43)}
    assert seeds == {42: 42, 43: 43}
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert "then judged on the same 500 test videos" not in readme
    assert "each seed's runs on that seed's own 500 test videos (the test set of the run's data seed)" in readme


def test_a_reused_run_with_an_older_prior_gets_it_fitted_again(stopped_then_continued, tmp_path, monkeypatch):
    runs = copy_runs(stopped_then_continued, tmp_path)
    best = runs / "lstm_vae" / BEST
    checkpoint = load_checkpoint(best)
    checkpoint["fitted_prior"] = {**checkpoint["fitted_prior"], "format_version": 1}  # an older rule's
    atomic_torch_save(checkpoint, best)
    assert stale_prior(best) is not None and stale_prior(runs / "baseline_vae" / BEST) is None
    monkeypatch.setattr(demo, "evaluate", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    code, out, _ = run_demo(tmp_path)
    assert code == 130 and out.count("reusing") == 4
    assert out.count("fitting it again") == 1 and "lstm_vae: its ex-post prior is of format 1" in out
    assert stale_prior(best) is None and stale_prior(runs / "lstm_vae" / LAST) is None


def test_train_args_that_start_with_dashes_are_accepted_as_a_separate_value(tmp_path, monkeypatch):
    """Issue 33, item 14: ``--train-args '--deterministic'`` (a separate value starting with ``--``) is the
    value of --train-args, as ``--train-args=--deterministic`` is."""
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda args, argv: seen.append((args.train_args, argv)) or 0)
    assert demo.main(["--train-args", "--deterministic", "--seeds", "1"]) == 0
    assert seen[0][0] == "--deterministic" and "--train-args=--deterministic" in seen[0][1]
    assert demo.main(["--train-args=--grad-clip 1"]) == 0 and seen[1][0] == "--grad-clip 1"


def test_a_model_option_goes_only_to_the_models_that_have_it_and_the_demo_says_which(tmp_path):
    """Issue 33, item 7: ``--model-option architecture=average`` (the Disentangled VAE's alone) no longer
    fails for the Baseline VAE; a note names the models it went to."""
    argv = [*TINY[:-1], TINY[-1] + " --model-option architecture=average --model-option slots=2",
            "--checkpoint-dir", str(tmp_path / "checkpoints"), "--out", str(tmp_path / "results")]
    args = demo.build_parser().parse_args(argv)
    assert demo.check_training_options(args) is None
    assert demo.requested_configs(args, "baseline", 42, "baseline_vae", amp=False)[0].feature_dim == 8
    assert demo.requested_configs(args, "disentangled", 42, "d", amp=False)[0].architecture == "average"
    notes = demo.option_notes(args, argv, demo.run_names(1, demo.hand_tracker(args)))
    assert "--model-option architecture=average goes to the disentangled model only (the others have no " \
           "architecture)" in notes
    assert ("--train-args chooses the Disentangled VAE's architecture: the disentangled_vae_slots run (the hand "
            "tracker beside the learned localiser) is skipped") in notes
    # an option no model has is still refused, naming it
    args.train_args += " --model-option no_such_field=1"
    assert "no_such_field" in demo.check_training_options(args)


def test_a_truncated_reused_best_beside_an_intact_last_is_one_line_before_any_work(stopped_then_continued,
                                                                                   tmp_path):
    """Issue 33, item 6: the reused best_model.pt is read before any work, as last.pt is."""
    best = copy_runs(stopped_then_continued, tmp_path) / "lstm_vae" / BEST
    best.write_bytes(best.read_bytes()[:1000])
    code, out, error = run_demo(tmp_path)
    assert code == 2
    line = one_line(error)
    assert line.startswith(f"demo.py: error: cannot use the run in {best.parent}: ") and str(best) in line
    assert "--retrain" in line and "reusing" not in out and not (tmp_path / "results").exists()


@pytest.mark.parametrize("stored_in", ["both", "top level only"])
def test_a_renamed_or_copied_run_folder_is_one_line_before_any_work(stopped_then_continued, tmp_path, stored_in):
    """A run folder holding another run with the settings asked for (a folder renamed or copied from another
    name: here lstm_vae's checkpoints name the run "old_lstm") would be evaluated under the name it was trained
    as, over that run's own evaluation: refused before any work. The evaluation takes the checkpoint's own
    ``experiment_name``, so a folder whose train config alone was renamed is refused too."""
    runs = copy_runs(stopped_then_continued, tmp_path)
    for file in (runs / "lstm_vae").glob("*.pt"):
        checkpoint = load_checkpoint(file)
        checkpoint["experiment_name"] = "old_lstm"
        if stored_in == "both":
            checkpoint["train_config"] = {**checkpoint["train_config"], "experiment_name": "old_lstm"}
        atomic_torch_save(checkpoint, file)
    code, out, error = run_demo(tmp_path)
    assert code == 2
    line = one_line(error)
    assert line.startswith(f"demo.py: error: cannot use the run in {runs / 'lstm_vae'}: it holds the run "
                           "'old_lstm' (a renamed or copied run folder)")
    assert "--retrain" in line and "training" not in out and not (tmp_path / "results").exists()


def test_a_run_folder_in_use_by_another_process_is_refused_before_any_work(stopped_then_continued, tmp_path):
    """Issue 33, item 8: a second demo (here: this process holding the lock, as the first demo does) on the
    same checkpoint folder is refused in one line naming the first's pid, before it reads or refits anything."""
    from training.run_folder.lock import RunLock

    runs = copy_runs(stopped_then_continued, tmp_path)
    best = runs / "lstm_vae" / BEST
    checkpoint = load_checkpoint(best)
    checkpoint["fitted_prior"] = {**checkpoint["fitted_prior"], "format_version": 1}  # would be refitted
    atomic_torch_save(checkpoint, best)
    before = best.read_bytes()
    with RunLock(runs / "lstm_vae"):
        code, out, error = run_demo(tmp_path)
    assert code == 2
    line = one_line(error)
    assert f"{runs / 'lstm_vae'} is in use by another process (pid {os.getpid()} on " in line
    assert "--overwrite" not in line and "reusing" not in out and "fitting" not in out
    assert best.read_bytes() == before and not (tmp_path / "results").exists()
    # the locks are released: the baseline run's folder can be locked again
    with RunLock(runs / "baseline_vae"):
        pass


def test_the_demo_holds_the_folders_of_the_runs_it_trained_until_it_ends(stopped_then_continued, tmp_path,
                                                                         monkeypatch):
    """Issue 33, item 8: a run the demo trained (train() releases its lock) stays locked through its
    evaluation, so a second demo cannot start on it meanwhile."""
    from training.run_folder.lock import RunFolderBusy, RunLock

    runs = copy_runs(stopped_then_continued, tmp_path)
    shutil.rmtree(runs / "lstm_vae")  # trained again by this demo
    busy = []

    def evaluate_while_a_second_process_tries(path, *args, **kwargs):
        for name in ("baseline_vae", "lstm_vae"):  # reused, and trained by this demo
            with pytest.raises(RunFolderBusy):
                RunLock(runs / name).acquire()
            busy.append(name)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "evaluate", evaluate_while_a_second_process_tries)
    code, out, _ = run_demo(tmp_path)
    assert code == 130 and "training lstm_vae" in out and busy == ["baseline_vae", "lstm_vae"]
    for name in ("baseline_vae", "lstm_vae"):
        with RunLock(runs / name):  # released at the end
            pass


def test_the_learned_localiser_is_the_default_disentangled_vae_and_the_hand_tracker_the_fourth_run():
    """The main ``disentangled_vae`` run is the default architecture, the learned localiser; the fourth run,
    ``disentangled_vae_slots``, is the hand tracker, skipped by ``--no-hand-tracker`` or when ``--train-args``
    chooses the architecture itself."""
    args = demo.build_parser().parse_args(TINY + ["--seeds", "2"])
    assert demo.hand_tracker(args)
    runs = demo.run_names(2, demo.hand_tracker(args))
    assert [name for _, _, name in runs] == ["baseline_vae", "lstm_vae", "disentangled_vae", "disentangled_vae_slots",
                                             "baseline_vae_seed43", "lstm_vae_seed43", "disentangled_vae_seed43",
                                             "disentangled_vae_slots_seed43"]
    architectures = {name: demo.requested_configs(args, model, seed, name, amp=False)[0].architecture
                     for model, seed, name in runs if model == "disentangled"}
    assert architectures == {"disentangled_vae": "keypoints", "disentangled_vae_slots": "slots",
                             "disentangled_vae_seed43": "keypoints", "disentangled_vae_slots_seed43": "slots"}
    assert demo.run_label("disentangled", "disentangled_vae_slots_seed43") == "Disentangled VAE (hand tracker)"
    assert demo.run_label("disentangled", "disentangled_vae") == "Disentangled VAE"
    assert not any("is skipped" in note or "no effect" in note for note in demo.option_notes(args, TINY, runs))
    skipped = demo.build_parser().parse_args(TINY + ["--no-hand-tracker"])
    assert not demo.hand_tracker(skipped)
    assert not any("is skipped" in note for note in demo.option_notes(skipped, TINY, demo.run_names(1)))
    # An option of the learned localiser goes to the default run, and to the hand tracker's with a note.
    tuned = demo.build_parser().parse_args([*TINY[:-1], f"{TINY[-1]} --model-option localiser_lr_scale=5"])
    assert demo.check_training_options(tuned) is None and demo.hand_tracker(tuned)
    assert ("disentangled: --model-option localiser_lr_scale=5.0 has no effect under architecture='slots': it applies "
            "only under architecture='keypoints' (the learned localiser, the default)"
            in demo.option_notes(tuned, TINY, demo.run_names(1, True)))
    for architecture in ("slots", "keypoints"):
        chosen = demo.build_parser().parse_args([*TINY[:-1], f"{TINY[-1]} --model-option architecture={architecture}"])
        assert not demo.hand_tracker(chosen)
        assert demo.requested_configs(chosen, "disentangled", 42, "disentangled_vae", amp=False)[0].architecture \
            == architecture


def test_the_old_option_that_skipped_the_learned_localiser_is_one_line_naming_the_new_one(capsys):
    with pytest.raises(SystemExit) as stop:
        demo.main([*TINY, "--no-learned-localiser"])
    assert stop.value.code == 2
    assert one_line(capsys.readouterr().err) == (
        "demo.py: error: --no-learned-localiser: the learned localiser is now the default Disentangled VAE; use "
        "--no-hand-tracker to skip the hand-tracker run")
    assert "--no-learned-localiser" not in demo.build_parser().format_help()


@pytest.mark.parametrize("more", [[], ["--no-hand-tracker"]])
def test_a_reused_disentangled_vae_trained_with_the_old_default_hand_tracker_is_refused(stopped_then_continued,
                                                                                        tmp_path, more):
    """A ``checkpoints/disentangled_vae`` trained when the hand tracker was the default (its config stores
    ``architecture="slots"``) is not reused as the new default learned localiser: the demo stops before any
    work, in one line naming the setting."""
    runs = copy_runs(stopped_then_continued, tmp_path)
    shutil.rmtree(runs / "disentangled_vae")
    shutil.copytree(runs / "disentangled_vae_slots", runs / "disentangled_vae")  # the old default's run
    assert load_checkpoint(runs / "disentangled_vae" / BEST)["model_config"]["architecture"] == "slots"
    code, out, error = run_demo(tmp_path, *more)
    assert code == 2
    line = one_line(error)
    assert "disentangled_vae: architecture slots (asked keypoints)" in line and "--retrain" in line
    assert "disentangled_vae_slots:" not in line  # the hand tracker's own run is what it asks for
    assert "reusing" not in out and "training" not in out and not (tmp_path / "results").exists()
