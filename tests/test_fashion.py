"""Moving Fashion-MNIST as a first-class dataset (issue 31): idx files found and read, the dataset stored with
the run, judges keyed by it, the class names and the dataset in the report; tiny idx files written here."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

import evaluate
from data import DataConfig, data_loaders, load_digits, mnist
from data.mnist import _IMAGE_MAGIC, _LABEL_MAGIC, CLASS_NAMES
from evaluation.judges.cache import judges_key
from evaluation.judges.networks import JudgeConfig
from evaluation.reporting import report as reports
from evaluation.reporting.comparison import write_report
from tests.evaluation_helpers import write_checkpoint
from tests.test_data import write_idx
from training import train as train_module
from training.train import main as train_main

pytestmark = pytest.mark.usefixtures("one_thread")


def write_fashion(folder, compress: bool):
    """Tiny Fashion-MNIST idx files: bright rectangles of a class-dependent width (100 + 20 images)."""
    folder.mkdir(parents=True, exist_ok=True)

    def images(count):
        array = np.zeros((count, 28, 28), dtype=np.uint8)
        for index in range(count):
            array[index, 6:22, 4 : 6 + 2 * (index % 10)] = 200
        return array

    for prefix, count in (("train", 100), ("t10k", 20)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images(count), _IMAGE_MAGIC, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 10, _LABEL_MAGIC, compress)
    return folder


def run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_idx_files_load_with_their_class_names(tmp_path, compress):
    digits = load_digits(write_fashion(tmp_path / "fashion", compress), "fashion")
    assert digits.dataset == "fashion" and len(digits.labels) == 120
    assert digits.class_names[0] == "T-shirt/top" and digits.class_names[9] == "Ankle boot"
    assert len(digits.pool("test")) == 20


def test_missing_fashion_files_say_in_one_line_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_DEFAULT_DIRS", (str(tmp_path / "nowhere"),))
    with pytest.raises(FileNotFoundError) as error:
        load_digits(None, "fashion")
    assert "apt-get install dataset-fashion-mnist" in str(error.value) and "\n" not in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_digits(tmp_path / "empty", "fashion")


def test_the_debian_folder_is_found_by_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "FASHION_DEFAULT_DIRS", (str(write_fashion(tmp_path / "debian", True)),))
    assert load_digits(None, "fashion").source == str((tmp_path / "debian").resolve())


def test_the_dataset_travels_with_the_data_config_and_old_checkpoints_are_mnist(tmp_path):
    config = DataConfig(dataset="fashion", mnist_root=str(write_fashion(tmp_path / "f", False)))
    assert DataConfig.from_dict(config.to_dict()).dataset == "fashion"
    old = {key: value for key, value in DataConfig().to_dict().items() if key != "dataset"}
    assert DataConfig.from_checkpoint({"data_config": old}).dataset == "mnist"
    with pytest.raises(ValueError, match="unknown dataset"):
        DataConfig(dataset="cifar")
    small = DataConfig(train_size=2, val_size=2, test_size=2, dataset="fashion", mnist_root=config.mnist_root)
    assert data_loaders(small, batch_size=2)[2].dataset.digits.dataset == "fashion"


def test_judges_are_trained_per_dataset(tmp_path):
    folder = str(write_fashion(tmp_path / "f", False))
    fashion = load_digits(folder, "fashion")
    as_mnist = load_digits(folder)  # the same files read as MNIST: the same source, another dataset
    video = DataConfig().video
    assert judges_key(video, fashion, JudgeConfig(), 0) != judges_key(video, as_mnist, JudgeConfig(), 0)


def test_training_takes_dataset_fashion_and_image_root(tmp_path, monkeypatch):
    seen = {}

    def fake_train(model_name, model_config, train_config, data_config, *args, **kwargs):
        seen["data"] = data_config
        raise train_module.ConfigError("stop here")

    monkeypatch.setattr(train_module, "train", fake_train)
    folder = write_fashion(tmp_path / "f", True)
    code, _, _ = run(train_main, ["--model", "baseline", "--name", "run", "--checkpoint-dir", tmp_path / "ck",
                                  "--device", "cpu", "--dataset", "fashion", "--image-root", folder])
    assert code == 2 and seen["data"].dataset == "fashion" and seen["data"].mnist_root == str(folder)
    monkeypatch.setattr(mnist, "FASHION_DEFAULT_DIRS", (str(tmp_path / "nowhere"),))
    code, _, error = run(train_main, ["--model", "baseline", "--name", "run2", "--checkpoint-dir", tmp_path / "ck",
                                      "--device", "cpu", "--dataset", "fashion"])
    assert code == 2 and error.count("\n") == 1 and "apt-get install dataset-fashion-mnist" in error


def test_evaluation_and_report_name_the_dataset_and_its_classes(tmp_path):
    folder = write_fashion(tmp_path / "f", False)
    checkpoint = write_checkpoint(tmp_path / "tiny_run")
    save_dir = tmp_path / "eval"
    code, _, error = run(evaluate.main, [
        "--checkpoint", checkpoint, "--device", "cpu", "--num_samples", "2", "--save_dir", save_dir,
        "--test-size", "5", "--max-samples", "5", "--batch-size", "5", "--interpolation-steps", "2", "--no-judges",
        "--dataset", "fashion", "--image-root", folder])
    assert code == 0, error
    document = json.loads((save_dir / "tiny_run_metrics.json").read_text())
    data = document["metadata"]["data"]
    assert data["title"] == "Moving Fashion-MNIST" and data["class_names"] == list(CLASS_NAMES["fashion"])
    assert document["metadata"]["evaluation_data_config"]["dataset"] == "fashion"
    documents = reports.load_results([save_dir / "tiny_run_metrics.json"])
    write_report(documents, tmp_path / "report", tmp_path, {"evaluation": 1.0}, torch.device("cpu"), False, {},
                 ["tiny_run"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Moving Fashion-MNIST" in text.splitlines()[0] and "T-shirt/top, Trouser, Pullover" in text
