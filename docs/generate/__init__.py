"""The reference pages generated from the code (docs/reference/*.md), and the check that they are current.

    python -m docs.generate           rewrite the pages (`make docs-reference`)
    python -m docs.generate --check   exit 1, naming each stale page, when a committed page differs

Each page has one owner in the code, read here rather than copied:

- params.md      the params.yaml schema: ``reprokit.core.config.Config`` and its sections' dataclasses
                 (types and defaults from the dataclasses, the comments beside each field from their source,
                 the ranges their ``check`` states), the built-in args of ``{name, args}`` blocks
                 (a component's ``builtins``: MODEL_ARGS, LOSS_ARGS);
- cli.md         the ``reprokit`` command's argparse parser (``reprokit.cli._parser``);
- run-folder.md  the run-folder layout (``reprokit.core.layout``), with how this repository's dvc.yaml
                 declares and reads each path;
- python-api.md  the names ``reprokit/__init__.py`` exports, one mkdocstrings block each.

This package lives outside ``reprokit``: no runtime layer imports it (tests/unit/test_dvc_yaml.py).
"""

from __future__ import annotations

from pathlib import Path

from docs.generate.cli_page import cli_page
from docs.generate.markdown import ROOT
from docs.generate.params_page import params_page
from docs.generate.python_api_page import python_api_page
from docs.generate.run_folder_page import run_folder_page

__all__ = ["REFERENCE", "REGENERATE", "pages", "stale_pages"]

REFERENCE = ROOT / "docs" / "reference"
REGENERATE = "python -m docs.generate"


def pages() -> dict[str, str]:
    """Every generated page: {file name in docs/reference: its Markdown}."""
    return {
        "params.md": params_page(),
        "cli.md": cli_page(),
        "run-folder.md": run_folder_page(),
        "python-api.md": python_api_page(),
    }


def stale_pages(reference: Path = REFERENCE, generated: dict[str, str] | None = None) -> list[str]:
    """The generated pages whose committed text (under ``reference``) differs from what the code produces now."""
    generated = pages() if generated is None else generated
    return [
        name
        for name, text in generated.items()
        if not (reference / name).is_file() or (reference / name).read_text() != text
    ]
