"""Tests of the training curves: read from metrics.csv, drawn for a paper (tiny, CPU)."""

from __future__ import annotations

import pytest

from tests.figure_helpers import open_image
from utils import curves
from utils.curves import plot_training_curves

pytestmark = pytest.mark.usefixtures("one_thread")

# ----------------------------------------------------------------------------------------------------
# Training curves


CSV = """epoch,step,train_loss,train_recon,train_kl,train_kl_content,val_loss,val_recon,val_kl,lr
1,10,500.0,400.0,100.0,60.0,450.0,380.0,90.0,0.001
2,20,300.0,250.0,50.0,30.0,310.0,260.0,,0.0005
3,30,250.0,210.0,40.0,25.0,nan,250.0,38.0,0.0001
"""


def test_training_curves_from_one_or_several_csvs(tmp_path):
    run = tmp_path / "run_a" / "metrics.csv"
    run.parent.mkdir()
    run.write_text(CSV)
    image = open_image(plot_training_curves(run, tmp_path / "curves.png"))
    assert image.format == "PNG"
    assert image.width > image.height  # loss, recon, kl / kl_content, lr: 2 rows of 3
    other = tmp_path / "other.csv"
    other.write_text(CSV.replace("500.0", "600.0"))
    overlaid = plot_training_curves({"a": run, "b": other}, tmp_path / "figs" / "both.pdf")
    assert overlaid.read_bytes().startswith(b"%PDF")


def test_training_curves_for_a_paper(tmp_path, monkeypatch):
    """Log axes in nats per video, the KL terms on one panel, no learning-rate panel, one legend, and a PDF."""
    figures = []
    save = curves.save_figure
    monkeypatch.setattr(curves, "save_figure", lambda figure, *a, **k: figures.append(figure) or save(figure, *a, **k))
    run = tmp_path / "run" / "metrics.csv"
    run.parent.mkdir()
    run.write_text(CSV.replace("train_kl_content,", "train_kl_content,train_kl_motion,").replace(
        "100.0,60.0,", "100.0,60.0,40.0,").replace("50.0,30.0,", "50.0,30.0,20.0,").replace("40.0,25.0,", "40.0,25.0,15.0,"))
    path = plot_training_curves({"Disentangled VAE": run, "Baseline VAE": tmp_path / "run" / "metrics.csv"},
                                tmp_path / "curves.png")
    assert path.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    axes = [ax for ax in figures[0].axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["total loss", "reconstruction", "KL terms"]
    assert {ax.get_yscale() for ax in axes} == {"log"} and {ax.get_ylabel() for ax in axes} == {"nats per video"}
    assert all(ax.get_legend() is None for ax in axes) and len(figures[0].legends) == 1
    labels = [text.get_text() for text in figures[0].legends[0].get_texts()]
    assert labels == ["Disentangled VAE", "Baseline VAE", "train", "validation", "KL content", "KL motion"]
    assert len(axes[2].get_lines()) == 2 * 2  # two runs, two terms (this CSV validates the total KL only)
    assert axes[0].get_xlabel() == "optimizer step"


def test_training_curves_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("epoch,lr\n1,0.1\n")
    with pytest.raises(ValueError, match="train_"):
        plot_training_curves(empty, tmp_path / "x.png")
