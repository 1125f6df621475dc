"""The benchmarks' own behaviour on bad input (their figures are measured by running them, not here)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import bench_eval, bench_time_to_quality, bench_train, run_all


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("benchmark", [bench_train.main, bench_eval.main, run_all.main])
def test_an_unavailable_device_is_one_line_and_exit_2(benchmark, capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmark(["--device", "cuda"])
    assert exit_.value.code == 2
    assert "CUDA is not available here" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize("train_args", ["--model-option -", "--model-option localiser_reassociate=pixels"])
def test_demo_settings_the_demo_refuses_are_one_line_and_exit_2_before_any_work(train_args, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        bench_time_to_quality.main(["--models", "disentangled", "--steps", "64", "--every", "64", "--device", "cpu",
                                    "--checkpoint-dir", str(tmp_path / "runs"),
                                    "--demo-args", f"--train-args '{train_args}'"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("python -m benchmarks.bench_time_to_quality: error: --demo-args: ")
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_failing_measurement_process_is_an_error_not_a_hang():
    # An image size the models refuse: the measuring process dies before it sends its row.
    with pytest.raises(RuntimeError, match="measuring baseline failed in its process"):
        bench_train.main(["--models", "baseline", "--image-size", "20", "--steps", "1", "--device", "cpu"])


def test_prior_fit_benchmark_times_before_and_now_and_scores_them(capsys):
    from benchmarks import bench_prior_fit

    rows = bench_prior_fit.main(["--models", "disentangled", "--train-steps", "0", "--videos", "12",
                                 "--held-out", "4", "--before", "--frames", "4"])
    assert [row["mixture"] for row in rows] == ["content (200 diag)", "paths (100 full)"]
    for row in rows:
        assert row["before s"] > 0 and row["now s"] > 0
        # the same EM: the same fit up to rounding, so the same held-out likelihood
        assert abs(row["now held-out ll"] - row["before held-out ll"]) < 1e-6 * abs(row["before held-out ll"])
    assert "| disentangled | paths (100 full)" in capsys.readouterr().out


def test_the_training_benchmark_measures_each_architecture_and_prints_their_step_ratio(capsys):
    args = bench_train.build_parser().parse_args(["--models", "baseline", "disentangled",
                                                  "--architectures", "keypoints", "slots"])
    assert bench_train.measured_runs(args) == [("baseline", None), ("disentangled", "keypoints"),
                                               ("disentangled", "slots")]
    assert bench_train.measured_runs(bench_train.build_parser().parse_args([])) == [
        ("baseline", None), ("lstm", None), ("disentangled", None)]


@pytest.mark.slow
def test_the_training_benchmark_times_two_architectures_in_one_run(capsys):
    rows = bench_train.main(["--models", "disentangled", "--architectures", "keypoints", "slots", "--batch-size", "2",
                             "--frames", "3", "--image-size", "32", "--width", "8", "--steps", "1", "--device", "cpu"])
    assert [row["model"] for row in rows] == ["disentangled (keypoints)", "disentangled (slots)"]
    ratio = rows[0]["ms/step"] / rows[1]["ms/step"]
    out = capsys.readouterr().out
    assert f"step ratio disentangled (keypoints) / disentangled (slots): {ratio:.2f} (separate processes)" in out
    # ... and measured again with the two steps taken in turn in one process, from its two medians
    line = next(line for line in out.splitlines() if "in turn in one process, 10 rounds" in line)
    quoted, medians = line.split(": ")[1].split(" (")[0], line.rsplit(": ", 1)[1].removesuffix(" ms)").split(" / ")
    assert float(quoted) == pytest.approx(float(medians[0]) / float(medians[1]), abs=0.02 + 0.01 * float(quoted))
