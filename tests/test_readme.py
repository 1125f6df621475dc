"""Every command in the README and in docs/ runs, and everything they name exists, so none can rot.

The ``bash`` blocks of README.md and of the pages in docs/ are run in order, in a temporary folder, with
options appended that shrink them to tiny sizes (argparse keeps the last value of a repeated option, so
the pages' own options are still parsed). Set-up commands (virtual environment, pip, Jupyter) are
listed here explicitly and checked to exist rather than run; ``make demo`` runs ``demo.py``, which
``tests/test_report.py`` runs end to end. The ``python`` blocks are executed as well. Every path, ``python`` module and command-line option that
the pages name is checked to exist, every link to lead to a file and heading, and the README to stay short.
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
# The pages whose blocks run, in this order (the README's, then the results' ablation, then training and
# evaluation before the benchmarks, as the README had them); a new page in docs/ runs after these.
FIRST = ["README.md", "docs/results.md", "docs/training.md", "docs/data.md"]
PAGES = FIRST + sorted(str(path.relative_to(REPO)) for path in (REPO / "docs").glob("*.md")
                       if str(path.relative_to(REPO)) not in FIRST)
TEXTS = {page: (REPO / page).read_text() for page in PAGES}
README_MAX_LINES = 300

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
    pattern = rf"```{language}\n(.*?)```"
    return [block for text in TEXTS.values() for block in re.findall(pattern, text, flags=re.DOTALL)]


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
        exec(compile(snippet, "README.md or docs/", "exec"), {"__name__": "readme"})  # noqa: S102 - our own docs
    assert (tmp_path / "eval_results" / "comparison_results.json").is_file()


# ----------------------------------------------------------------------------------------------------
# Everything the pages name exists


# Where the code writes its outputs (and the user's own files): paths under these need not exist in a clone.
OUTPUT_PREFIXES = ("results/", "checkpoints/", "eval_results/", "ablation_results/", "eval_my_videos",
                   "~/.cache/content_motion_vae", ".venv/")
EXTERNAL_PATHS = {  # files the user brings, and where other tools keep theirs
    "videos.npy": "the user's own videos",
    "mnist_test_seq.npy": "the published Moving MNIST test file",
    "/usr/share/datasets/fashion-mnist": "where Debian's dataset-fashion-mnist installs",
    "/path/to/MNIST": "a folder of the official MNIST files",
    "MNIST/raw": "torchvision's MNIST folder",
}
EXTERNAL_OPTIONS = {"--index-url": "pip", "--nproc_per_node": "torchrun", "--logdir": "tensorboard",
                    "--help": "every command"}
EXTERNAL_MODULES = {"venv", "torch.distributed.run"}
PLACEHOLDERS = r"NAME|PATH|RUN|PID|X{2,}|\{[^}]*\}|\*"
PATH_SUFFIX = re.compile(r"\.(py|md|ipynb|toml|txt|png|pdf|gif|mp4|json|csv|pt|npy|npz|tex|html|log|tmp)$")




def repository_files() -> list[str]:
    """The repository's files (git's, or every file outside the virtual environment and caches)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True)
    if listed.returncode == 0 and listed.stdout:
        return [name for name in listed.stdout.split() if (REPO / name).is_file()]
    skip = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache"}
    return [str(path.relative_to(REPO)) for path in REPO.rglob("*")
            if path.is_file() and not skip & set(path.relative_to(REPO).parts)]


TRACKED = repository_files()
# the code, where options and output files are named
SOURCES = "\n".join((REPO / name).read_text() for name in TRACKED
                     if name.endswith(".py") and not name.startswith("tests/"))
FILE_NAMES = {part for name in TRACKED for part in Path(name).parts}  # files' and folders' names


def prose(text: str) -> str:
    """The page without its fenced blocks and HTML comments."""
    return re.sub(r"```.*?```|<!--.*?-->", "", text, flags=re.DOTALL)


def named_paths(page: str) -> list[str]:
    """Paths the page names: inline code that looks like a path, and the targets of its links."""
    text = TEXTS[page]
    spans = re.findall(r"`([^`\n]+)`", prose(text))
    paths = [span for span in spans if not re.search(r"[\s(),=|<>]", span)
             and ("/" in span or PATH_SUFFIX.search(span)) and not span.startswith(("-", "http"))
             and not re.fullmatch(r"\.\w+", span)]  # a bare suffix (`.pt`) names a kind of file
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", prose(text))]
    # the maps of the code: plain fenced blocks, whose file and folder names are checked too
    maps = " ".join(re.findall(r"```\n(.*?)```", text, flags=re.DOTALL))
    files = [word.strip("(),;:") for word in maps.split()]
    files = [word for word in files if re.fullmatch(r"[\w.]+/|[\w]+\.(py|md|ipynb)|LICENSE", word)]
    return paths + files + [link for link in links if link and not link.startswith(("http://", "https://"))]


def path_exists(page: str, path: str) -> bool:
    clean = path.replace("[.gz]", "").removeprefix("./").rstrip("/")
    if (REPO / clean).exists() or (REPO / page).parent.joinpath(clean).exists():
        return True
    if "/" not in clean and clean in FILE_NAMES:  # a file named in its folder's context (`sap.py`)
        return True
    if clean.startswith(OUTPUT_PREFIXES) or clean in EXTERNAL_PATHS:
        return True
    # An output file named with placeholders (NAME_metrics.json, .NAME.PID.XXXXXXXX.tmp): the code writes
    # it, so every literal part of its name is in the code.
    if "/" in clean and not re.search(PLACEHOLDERS, clean):
        return False
    parts = [part for part in re.split(PLACEHOLDERS, clean.rsplit("/", 1)[-1]) if len(part.strip("._")) >= 3]
    return bool(parts) and all(part in SOURCES for part in parts)


def test_the_readme_is_short():
    lines = len(README.splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, at most {README_MAX_LINES}: move text to docs/"


def test_every_page_is_linked_from_the_readme():
    for page in PAGES[1:]:
        assert f"]({page})" in README or f"]({page}#" in README, f"README.md does not link {page}"


@pytest.mark.parametrize("page", PAGES)
def test_every_path_named_exists(page):
    missing = [path for path in named_paths(page) if not path_exists(page, path)]
    assert not missing, f"{page} names paths that neither exist nor are documented outputs: {missing}"


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.*)$", prose(text), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES)
def test_every_link_leads_to_a_file_and_a_heading(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(TEXTS[page])):
        if target.startswith(("http://", "https://")):
            continue
        file, _, anchor = target.partition("#")
        destination = (REPO / page).parent / file if file else REPO / page
        if not destination.exists():
            broken.append(target)
        elif anchor and anchor not in heading_anchors(destination.read_text()):
            broken.append(target)
    assert not broken, f"{page} has links to missing files or headings: {broken}"


def named_commands(text: str) -> list[str]:
    """Command lines a page names: the lines of its code blocks and its inline code that start a command."""
    code = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in code for line in block.splitlines()]
    spans = re.findall(r"`([^`\n]+)`", prose(text))
    return [line for line in lines + spans if re.match(r"(python3? |torchrun |make demo)", line)]


def command_key(command: str) -> str | None:
    """Which program a command line runs: a module name, a script file, or None for pip, venv, make."""
    words = shlex.split(command.replace(" ...", "")) if command.count("'") % 2 == 0 else command.split()
    if words[0] == "make":
        return "demo.py"
    if "-m" in words:
        return words[words.index("-m") + 1]
    return next((word for word in words if word.endswith(".py")), None)


@pytest.mark.parametrize("page", PAGES)
def test_every_module_named_exists(page):
    missing = []
    for command in named_commands(TEXTS[page]):
        key = command_key(command)
        if key is None or key in EXTERNAL_MODULES:
            continue
        file = key if key.endswith(".py") else key.replace(".", "/") + ".py"
        if not (REPO / file).is_file():
            missing.append(command)
    assert not missing, f"{page} runs modules or scripts that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_option_named_is_defined(page):
    """Every ``--option`` a page names is defined by the project's argparse options (or is pip's, torchrun's,
    TensorBoard's); the slow test below checks each against the --help of the command it is used with."""
    options = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", TEXTS[page]))
    # an option is written out ("--seed") or made from a config field's name (content_dim: --content-dim)
    undefined = sorted(
        option for option in options if option not in EXTERNAL_OPTIONS and f'"{option}"' not in SOURCES
        and not re.search(rf"^\s+{option[2:].replace('-', '_')}: ", SOURCES, flags=re.MULTILINE))
    assert not undefined, f"{page} names options that no command defines: {undefined}"


def options_of(key: str, environment: dict) -> set[str]:
    argv = [sys.executable, "-m", key] if not key.endswith(".py") else [sys.executable, str(REPO / key)]
    result = subprocess.run([*argv, "--help"], cwd=REPO, env=environment, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{key} --help failed: {result.stderr[-2000:]}"
    return set(re.findall(r"--[a-z][a-z0-9_-]*", result.stdout))


def used_options(command: str) -> dict[str, set[str]]:
    """The options of a command line, by the program that reads them (--train-args and --demo-args pass
    their value on to training.train and demo.py)."""
    key = command_key(command)
    balanced = command.count("'") % 2 == 0 and command.count('"') % 2 == 0
    words = shlex.split(command) if balanced else command.split()
    if words[0] == "make":
        words = shlex.split(words[-1].partition("=")[2]) if "ARGS=" in command else []
    found: dict[str, set[str]] = {key: set()}
    for i, word in enumerate(words):
        if word in ("--train-args", "--demo-args") and i + 1 < len(words):
            inner = "training.train" if word == "--train-args" else "demo.py"
            nested = used_options(f"python -m training.train {words[i + 1]}" if inner == "training.train"
                                  else f"python demo.py {words[i + 1]}")
            for program, options in nested.items():
                found.setdefault(program, set()).update(options)
        if re.fullmatch(r"--[a-z][a-z0-9_-]*(=.*)?", word):
            found[key].add(word.split("=")[0])
    return found


@pytest.mark.slow
def test_every_option_is_in_the_help_of_its_command():
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    wanted: dict[str, dict[str, set[str]]] = {}
    for page in PAGES:
        for command in named_commands(TEXTS[page]):
            if command_key(command) in (None, *EXTERNAL_MODULES):
                continue
            for program, options in used_options(command).items():
                wanted.setdefault(program, {}).setdefault(page, set()).update(options)
    unknown = []
    for program, by_page in sorted(wanted.items()):
        known = options_of(program, environment)
        for page, options in by_page.items():
            extra = sorted(options - known - set(EXTERNAL_OPTIONS))
            unknown += [f"{page}: {program} {option}" for option in extra]
    assert not unknown, f"options not in the --help of the command they are used with: {unknown}"
