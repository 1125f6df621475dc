"""Summary tables from saved evaluation results, as the design document's "Creating Summary Tables" shows.

    python summarize.py [RESULTS ...] [--out DIR]

Reads ``NAME_metrics.json`` files written by ``evaluate.py`` (files, or folders searched for
``*_metrics.json``; default ``eval_results``), groups the runs by model and settings, and writes to
``--out`` (default: the first folder given):

* ``comparison_results.json``: ``{"Baseline VAE": {"mse": ..., "psnr": ..., "ssim": ..., ...}, ...}``;
* ``disentanglement_metrics.json``: the Disentangled VAE's metrics at the top level (the keys the design
  document's summary script reads) and every model's under ``by_model``;
* ``table_reconstruction``, ``table_disentanglement``, ``table_swaps``, ``table_generation`` (the generation
  metrics of :mod:`evaluation.generation`), ``table_cost`` as ``.md`` and ``.tex``.

Several runs of one model with the same settings (seeds) are reported as mean ± sample standard
deviation. A run is its checkpoint's weights: repeat evaluations of one checkpoint (a copied file, another
test-set size, a refitted prior) count once (the one on the most test videos is kept, with a note). A
section that is null (e.g. ``"generation": null``) is read as missing, with a note. The summary files it writes are
never read back as runs, so it can run again on its own output folder. Runs of one model with different settings (an ablation, e.g. ``--model-option
content_pooling=global``) become separate columns named by the settings in which they differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evaluation.reporting import report as reports
from evaluation.reporting.writer import markdown_table

PROG = "summarize.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", default=["eval_results"],
                        help="metrics files or folders of them (default: eval_results)")
    parser.add_argument("--out", default=None, help="output folder (default: the first folder given)")
    args = parser.parse_args(argv)
    try:
        documents = reports.load_results(args.results)
    except (FileNotFoundError, ValueError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    for document in documents:
        if document["missing_sections"]:
            print(f"note: {document['source']} holds no {', '.join(document['missing_sections'])} metrics (null): "
                  "those cells are left blank")
    documents, repeats = reports.distinct_runs(documents)
    for note in repeats:
        print(f"note: {note}")
    first = Path(args.results[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    if out.exists() and not out.is_dir():
        print(f"{PROG}: error: --out {out} is a file, not a folder; pass a folder (it is created if missing)",
              file=sys.stderr)
        return 2
    grouped = reports.group_by_model(documents)
    for name, rows in reports.tables_for(documents).items():
        print(f"{name.upper()}\n{markdown_table(reports.table(grouped, rows))}\n")
    missing = reports.not_available(documents)
    if missing:
        print("NOT AVAILABLE\n" + "\n".join(f"- {line}" for line in missing) + "\n")
    expected = reports.expected_vs_measured(grouped)
    if not expected.empty:
        print(f"EXPECTED (design document) VS MEASURED\n{markdown_table(expected)}\n")
    try:
        written = reports.write_summary(documents, out)
    except OSError as error:  # a parent that is a file, no permission, a full disk
        print(f"{PROG}: error: cannot write the summary into {out}: {error.strerror or error}"
              f"{f' ({error.filename})' if error.filename else ''}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
