"""docs/reference/python-api.md: one mkdocstrings block per name ``reprokit/__init__.py`` exports.

The root loads its names lazily (in ``__getattr__``), so neither mkdocstrings' static reading nor
``import reprokit`` sees where each is defined: the source's ``__all__`` and its imports say it.
Importing them instead would load Lightning (seconds) to write four lines.
"""

from __future__ import annotations

import ast

from docs.generate.markdown import ROOT, anchor, notice, page
from docs.generate.source import parsed


def public_api() -> list[tuple[str, str | None]]:
    """(name, the module that defines it) for each name of ``reprokit.__all__``; None for a plain value."""
    tree = parsed(ROOT / "reprokit" / "__init__.py")[0]
    exported: list[str] = []
    origin: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            exported = list(ast.literal_eval(node.value))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reprokit."):
            for alias in node.names:
                origin[alias.asname or alias.name] = str(node.module)
    return [(name, origin.get(name)) for name in exported]


def python_api_page() -> str:
    api = public_api()
    out = [
        "# Python API\n\n",
        notice("the names reprokit/__init__.py exports"),
        (
            "The root package exposes a handful of names; everything else is imported by its path. "
            "`import reprokit` stays cheap: each name is loaded on first use.\n\n"
        ),
    ]
    for name, module in api:
        if module is not None:
            # The module's docstring too: it is where a name's module explains it (LightningModule's, the metrics').
            out.append(
                f"## `reprokit.{name}` {{#{anchor(name)}}}\n\nDefined in `{module}`.\n\n::: {module}\n"
                f"    options:\n      members: [{name}]\n      show_root_heading: false\n      show_root_toc_entry: false\n\n"
            )
    plain = [name for name, module in api if module is None]
    if plain:
        out.append("## Other names {#other-names}\n\n" + "".join(f"- `reprokit.{n}`\n" for n in plain))
    return page(*out)
