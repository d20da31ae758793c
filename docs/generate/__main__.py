"""``python -m docs.generate [--check]``: write the reference pages, or check that the committed ones are current."""

from __future__ import annotations

import argparse
import sys

from docs.generate import REFERENCE, REGENERATE, pages, stale_pages
from reprokit.core.fileio import write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m docs.generate", description="Write the reference pages generated from the code."
    )
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a committed page differs")
    args = parser.parse_args(argv)
    generated = pages()
    if args.check:
        stale = stale_pages(REFERENCE, generated)
        for name in stale:
            print(f"docs/reference/{name} differs from what the code generates: run `{REGENERATE}`", file=sys.stderr)
        return 1 if stale else 0
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for name, text in generated.items():
        target = REFERENCE / name
        if target.is_file() and target.read_text() == text:
            continue
        write_text(target, text)  # atomic: mkdocs (or a reader) never sees half a page
        print(f"wrote docs/reference/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
