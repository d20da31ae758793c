"""Markdown for the generated pages: escaped text, code spans, tables, anchors, docstring paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def notice(source: str) -> str:
    """The first lines of a generated page: where it comes from and how to regenerate it."""
    return f"<!-- Generated from {source} by docs/generate: do not edit; run `python -m docs.generate`. -->\n\n"


def escape(text: str) -> str:
    """Plain text for a Markdown table cell or paragraph: code spans kept, markup characters outside them escaped
    (``pml:<Class>`` is not an HTML tag, ``[0, 1]`` not a link, ``image_size`` not emphasis)."""
    out = []
    for i, part in enumerate(re.split(r"(``.+?``|`[^`]+`)", text)):
        if i % 2:  # a code span: only the table's cell separator needs escaping
            out.append(part.replace("|", "\\|"))
            continue
        part = part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        out.append(re.sub(r"([\\|*_\[\]])", r"\\\1", part))
    return "".join(out)


def code(text: str) -> str:
    """``text`` as a code span that is safe in a table cell."""
    tick = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{tick}{pad}{text}{pad}{tick}".replace("|", "\\|")


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n\n"


def anchor(key: str) -> str:
    """A heading id from a dotted key or a path: ``data.digits`` -> ``data-digits``."""
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")


def paragraphs(doc: str | None) -> str:
    """A docstring as Markdown paragraphs: a paragraph's lines joined, bullet lists kept."""
    if not doc:
        return ""
    out = []
    for block in re.split(r"\n\s*\n", doc.strip()):
        lines = [line.strip() for line in block.splitlines()]
        if not lines[0].startswith("- "):
            out.append(escape(" ".join(lines)))
            continue
        items: list[list[str]] = []
        for line in lines:
            if line.startswith("- ") or not items:
                items.append([line.removeprefix("- ")])
            else:
                items[-1].append(line)
        out.append("\n".join(f"- {escape(' '.join(item))}" for item in items))
    return "\n\n".join(out) + "\n\n"


def page(*parts: str) -> str:
    """The parts joined, ending with exactly one newline."""
    return "".join(parts).rstrip("\n") + "\n"
