"""The report writer: headings, paragraphs, lists, tables and images rendered as Markdown and as HTML.

:class:`Report` collects blocks and writes ``<stem>.md`` and ``<stem>.html`` from the same blocks;
:func:`markdown_table` is the one Markdown rendering of a table that the report, the summary files and
``summarize.py`` share.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from utils.atomic import atomic_write_text


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame of formatted strings as a Markdown table (the strings are kept as they are)."""
    return frame.to_markdown(disable_numparse=True)





class Report:
    """Headings, paragraphs, lists, tables and images, rendered to Markdown and to a standalone HTML page.

    Image paths are stored relative to the report's folder so both files can move together.
    """

    def __init__(self, title: str, folder: str | os.PathLike) -> None:
        self.title, self.folder, self.blocks = title, Path(folder), []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str) -> None:
        self.blocks.append(("paragraph", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def image(self, path: str | os.PathLike, caption: str) -> None:
        self.blocks.append(("image", os.path.relpath(Path(path), self.folder), caption))

    def links(self, items: Sequence[tuple[str, str | os.PathLike]]) -> None:
        self.blocks.append(("links", [(text, os.path.relpath(Path(path), self.folder)) for text, path in items]))

    def markdown(self) -> str:
        lines = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                lines += ["#" * block[1] + " " + block[2], ""]
            elif kind == "paragraph":
                lines += [block[1], ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                lines += [markdown_table(block[1]), ""]
            elif kind == "image":
                lines += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
            elif kind == "links":
                lines += [" · ".join(f"[{text}]({path})" for text, path in block[1]), ""]
        return "\n".join(lines)

    def html(self) -> str:
        body = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                body.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                body.append(f"<p>{_inline_html(block[1])}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline_html(item)}</li>" for item in block[1]) + "</ul>")
            elif kind == "table":
                body.append(block[1].to_html(border=0, classes="metrics"))
            elif kind == "image":
                body.append(f'<figure><img src="{html.escape(block[1])}" alt="{html.escape(block[2])}">'
                            f"<figcaption>{html.escape(block[2])}</figcaption></figure>")
            elif kind == "links":
                body.append("<p>" + " · ".join(f'<a href="{html.escape(path)}">{html.escape(text)}</a>'
                                               for text, path in block[1]) + "</p>")
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
                 "table.metrics{border-collapse:collapse;margin:1em 0}"
                 "table.metrics td,table.metrics th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}"
                 "table.metrics th:first-child,table.metrics td:first-child{text-align:left}"
                 "img{max-width:100%;image-rendering:pixelated}figcaption{color:#555;font-size:90%}"
                 "code{background:#f3f3f3;padding:0 3px}")
        return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "\n".join(body) + "</body></html>\n")

    def write(self, stem: str = "report") -> list[Path]:
        """Write ``<folder>/<stem>.md`` and ``<folder>/<stem>.html``; returns both paths."""
        return [atomic_write_text(self.folder / f"{stem}.md", self.markdown()),
                atomic_write_text(self.folder / f"{stem}.html", self.html())]


def _inline_html(text: str) -> str:
    """Escape, then turn Markdown's `code` and **bold** into HTML."""
    escaped = html.escape(text)
    parts = escaped.split("`")
    escaped = "".join(f"<code>{part}</code>" if index % 2 else part for index, part in enumerate(parts))
    parts = escaped.split("**")
    return "".join(f"<b>{part}</b>" if index % 2 else part for index, part in enumerate(parts))
