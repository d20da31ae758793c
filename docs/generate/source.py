"""What a class's source says beside its fields: the docstring, the comments above a field and after it.

Read with ``ast`` and ``tokenize`` (comments are not in the tree), so a field documented by a
comment in the code is documented on the site, with no second copy to keep in step.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import re
import tokenize
from pathlib import Path

# Comments that talk to a tool, not to a reader.
_PRAGMA = re.compile(r"^(noqa|type:|pragma|fmt:)")


@functools.cache
def parsed(path: Path) -> tuple[ast.Module, dict[int, str], dict[int, str]]:
    """A module's tree, its trailing comments and its own-line comments, by line number."""
    text = path.read_text()
    lines = text.splitlines()
    trailing: dict[int, str] = {}
    own_line: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            row, col = tok.start
            comment = tok.string.lstrip("#").strip()
            (own_line if lines[row - 1][:col].strip() == "" else trailing)[row] = comment
    return ast.parse(text), trailing, own_line


def class_node(cls: type) -> tuple[ast.ClassDef, Path]:
    path = Path(inspect.getsourcefile(cls) or "")
    for node in ast.walk(parsed(path)[0]):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node, path
    raise LookupError(f"class {cls.__qualname__} not found in {path}")


def class_doc(cls: type) -> str | None:
    """The docstring written in the class's source (``cls.__doc__`` of a dataclass without one is its signature)."""
    return ast.get_docstring(class_node(cls)[0])


def statement_comment(node: ast.stmt, body: list[ast.stmt], path: Path) -> str:
    """The own-line comments right above a statement, its trailing comments, and a string literal right after it."""
    _, trailing, own_line = parsed(path)
    above = []
    line = node.lineno - 1
    while line in own_line:
        above.append(own_line[line])
        line -= 1
    end = node.end_lineno or node.lineno
    parts = [c for c in reversed(above) if c]
    parts += [trailing[n] for n in range(node.lineno, end + 1) if n in trailing]
    parts = [p for p in parts if not _PRAGMA.match(p)]
    after = body.index(node) + 1
    if after < len(body):
        nxt = body[after]
        if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            parts.append(inspect.cleandoc(nxt.value.value))
    return " ".join(parts)


def assignment(node: ast.ClassDef, name: str) -> ast.stmt | None:
    """The statement in a class body that assigns ``name`` (``name: T = ...`` or ``name = ...``)."""
    for stmt in node.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.target.id == name:
            return stmt
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in stmt.targets):
            return stmt
    return None


def field_comment(cls: type, name: str) -> str:
    """What the source says about a dataclass field: from the first class in the MRO that defines it with a
    comment (a subclass that only changes a default keeps its base's words)."""
    for klass in cls.__mro__:
        if not dataclasses.is_dataclass(klass):
            continue
        node, path = class_node(klass)
        stmt = assignment(node, name)
        comment = statement_comment(stmt, node.body, path) if stmt is not None else ""
        if comment:
            return comment
    return ""
