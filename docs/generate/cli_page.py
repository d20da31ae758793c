"""docs/reference/cli.md: every ``reprokit`` command and argument, from the argparse parser in reprokit/cli.py.

argparse has no public way to list a parser's arguments or its subcommands' help: this reads
``_actions`` and ``_choices_actions``, which argparse has kept for as long as it has existed.
"""

from __future__ import annotations

import argparse
import functools

from docs.generate.markdown import anchor, code, escape, notice, page, table


def usage(parser: argparse.ArgumentParser) -> str:
    """The parser's usage line, on one line whatever the terminal's width."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=10**6)
    return parser.format_usage().removeprefix("usage: ").strip()


def argument(action: argparse.Action) -> str:
    """How an argument is written: ``rev``, ``[dir]``, ``--jobs JOBS``, ``--keep``."""
    if not action.option_strings:
        name = str(action.metavar or action.dest)
        return f"[{name}]" if action.nargs == "?" else name
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    if action.choices:
        metavar = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        metavar = str(action.metavar or action.dest.upper())
    return ", ".join(f"{flag} {metavar}" for flag in action.option_strings)


def _shown_default(default: object) -> str:
    # Identity, not equality: 0 and 0.0 are defaults worth showing, False and None are not.
    if default is None or default is False or default is argparse.SUPPRESS or default == []:
        return ""
    return code(str(default))


def argument_rows(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    rows = []
    for action in parser._actions:
        hidden = action.help == argparse.SUPPRESS
        if hidden or isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        notes = []
        if action.choices and not action.option_strings:
            notes.append("one of " + ", ".join(code(str(c)) for c in action.choices))
        if action.required and action.option_strings:
            notes.append("required")
        if isinstance(action, argparse._AppendAction) and "repeatable" not in (action.help or ""):
            notes.append("repeatable")
        what = "; ".join(([escape(action.help)] if action.help else []) + notes)
        rows.append((code(argument(action)), _shown_default(action.default), what))
    return rows


def _sentence(text: str) -> str:
    return escape(text[:1].upper() + text[1:]).rstrip(".") + "." if text else ""


def cli_page() -> str:
    from reprokit.cli import _parser

    parser = _parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {a.dest: a.help or "" for a in commands._choices_actions}
    out = [
        "# The `reprokit` command\n\n",
        notice("the argparse parser in reprokit/cli.py"),
        _sentence(parser.description or "") + " Errors are one line on stderr and a non-zero exit status; "
        "`--verbose` (or `REPROKIT_DEBUG=1`) adds the traceback.\n\n",
        f"```text\n{usage(parser)}\n```\n\n",
        table(("command", "what it does"), [(f"[`{n}`](#{anchor(n)})", escape(helps[n])) for n in commands.choices]),
        "## Options of every command {#options}\n\n",
        table(("option", "default", "what it does"), argument_rows(parser)),
    ]
    for name, sub in commands.choices.items():
        out.append(f"## `reprokit {name}` {{#{anchor(name)}}}\n\n{_sentence(helps[name] or sub.description or '')}\n\n")
        out.append(f"```text\n{usage(sub)}\n```\n\n")
        rows = argument_rows(sub)
        if rows:
            out.append(table(("argument", "default", "what it does"), rows))
    return page(*out)
