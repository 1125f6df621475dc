"""Every command in the README runs, so none can rot.

The README's ``bash`` blocks are run in order, in a temporary folder, with options appended that shrink
them to tiny sizes (argparse keeps the last value of a repeated option, so the README's own options are
still parsed). Set-up commands (virtual environment, pip, Jupyter) are listed here explicitly and checked
to exist rather than run; ``make demo`` runs ``demo.py``, which ``tests/test_report.py`` runs end to end.
The ``python`` blocks are executed as well.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()

TINY_DATA = ["--train-size", "8", "--val-size", "8", "--test-size", "8", "--batch-size", "4", "--frames", "4"]
TINY = {
    "training.train": ["--epochs", "1", *TINY_DATA, "--width", "8", "--lstm-hidden", "16", "--quiet", "--device", "cpu"],
    "evaluate.py": ["--device", "cpu", "--test-size", "8", "--max-samples", "8", "--no-judges", "--num_samples", "2",
                    "--prediction-samples", "2", "--prediction-videos", "2", "--prediction-horizon", "20"],
    "summarize.py": [],
    "benchmarks.bench_data": ["--batches", "2"],
    "benchmarks.bench_train": ["--batch-size", "2", "--frames", "2", "--image-size", "32", "--width", "8",
                               "--steps", "1", "--models", "baseline"],
    "benchmarks.bench_eval": ["--videos", "8", "--batch-size", "8", "--no-judges", "--models", "baseline"],
    "benchmarks.run_all": ["--only", "data"],
}  # fmt: skip
# The ablation script runs training.train and evaluate.py: the same tiny options, passed through.
TINY["ablation.py"] = ["--train-args", shlex.join(TINY["training.train"]), "--test-size", "8",
                       "--eval-args", shlex.join(TINY["evaluate.py"])]
NOT_RUN = {  # set-up and interactive commands: checked, not run
    "make demo": "demo.py runs end to end in tests/test_report.py",
    "make test": "it is this test suite",
    "python3 -m venv .venv": "creates an environment",
    ".venv/bin/pip install": "installs packages",
    "touch .venv/.installed": "marks the environment as installed",
    ".venv/bin/jupyter notebook": "starts an interactive server; tests/test_notebooks.py runs the notebooks",
}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def commands() -> list[str]:
    lines = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def runnable(command: str) -> tuple[list[str], str] | None:
    """The argv that runs a README command here (tiny options appended), or None for set-up commands."""
    if any(command.startswith(prefix) for prefix in NOT_RUN):
        return None
    words = shlex.split(command)
    if words[0] == "torchrun":
        words = [sys.executable, "-m", "torch.distributed.run", *words[1:]]
    elif words[0] == "python":
        words = [sys.executable, *words[1:]]
    else:
        raise AssertionError(f"the README command {command!r} is neither run nor listed in NOT_RUN")
    modules = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-m"]
    script = modules[-1] if modules else next(word for word in words if word.endswith(".py"))
    key = Path(script).name if script.endswith(".py") else script
    if script.endswith(".py"):
        words[words.index(script)] = str(REPO / script)
    assert key in TINY, f"no tiny options for {key} (README command {command!r})"
    return words + TINY[key], key


def test_every_readme_command_is_run_or_explained():
    found = commands()
    assert any(c.startswith("python -m training.train") for c in found)
    for command in found:
        runnable(command)  # raises for a command that is neither
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test", "ablation"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target


@pytest.mark.slow
def test_readme_commands_and_snippets_run(tmp_path, monkeypatch):
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for command in commands():
        plan = runnable(command)
        if plan is None:
            continue
        argv, _ = plan
        result = subprocess.run(argv, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"README command failed: {command}\n{result.stdout[-2000:]}{result.stderr[-3000:]}"
    for run in ("baseline_vae", "lstm_vae", "disentangled_vae"):
        assert (tmp_path / "checkpoints" / run / "best_model.pt").is_file()
    assert (tmp_path / "eval_results" / "disentangled_vae_metrics.json").is_file()
    assert (tmp_path / "eval_results" / "table_reconstruction.tex").is_file()
    assert (tmp_path / "ablation_results" / "table_reconstruction.tex").is_file()
    assert len(list((tmp_path / "ablation_results").glob("dis_*_metrics.json"))) == 6

    # The python snippets, in the same folder (judges stubbed: their own tests train them).
    import evaluation.judges.cache

    (tmp_path / "eval_results" / "comparison_results.json").unlink()  # the custom script writes it again
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(evaluation.judges.cache, "get_judges", lambda *args, **kwargs: None)
    for snippet in blocks("python"):
        exec(compile(snippet, "README.md", "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    assert (tmp_path / "eval_results" / "comparison_results.json").is_file()
