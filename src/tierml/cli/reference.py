"""The CLI reference (docs/cli.md), rendered from the commands' own ``--help``.

Every command and subcommand in ``--help`` order: its help text verbatim (with its
example), its usage line and a table of its arguments and options (type, default, help,
exactly as ``--help`` states them). The rendering does not depend on the terminal: usage
lines are joined, never wrapped, and nothing goes through rich, so there is no ANSI.

    python -m tierml.cli.reference --write    # (re)write docs/cli.md
    python -m tierml.cli.reference --check    # exit 1 when docs/cli.md is stale
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer
import typer.main
from typer.core import TyperArgument, TyperGroup, TyperOption

from tierml.cli.main import app as tierml_app
from tierml.generated_doc import GeneratedDoc, run

# "Example: …" or "Examples:" at the start of a line or after a sentence.
EXAMPLE = re.compile(r"(^|\s)Examples?:", re.MULTILINE)
# A numeric range as --help states it: "x>=1", "0<=x<=1".
RANGE = re.compile(r"[\d.<=>-]*x[\d.<=>-]*")


@dataclass(frozen=True)
class ParamDoc:
    kind: str  # "argument" or "option"
    names: str  # "model", "--format", "--zoo / --no-zoo"
    type: str  # "path", "int (x>=1)", "flag", "table|json"
    default: str  # as --help shows it; "" when --help shows none
    required: bool
    help: str


@dataclass(frozen=True)
class CommandDoc:
    path: tuple[str, ...]  # ("tierml", "zoo", "build")
    help: str
    usage: str
    params: tuple[ParamDoc, ...]
    subcommands: tuple[str, ...]  # a group's commands, in --help order; () for a command

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def is_group(self) -> bool:
        return bool(self.subcommands)

    @property
    def summary(self) -> str:
        """The first paragraph, without an inline example."""
        first = self.help.strip().split("\n\n")[0]
        return " ".join(EXAMPLE.split(first)[0].split())

    @property
    def has_example(self) -> bool:
        return EXAMPLE.search(self.help) is not None

    def option(self, name: str) -> ParamDoc | None:
        return next((p for p in self.params if name in p.names.split()), None)


def command_docs(app: typer.Typer, name: str = "tierml") -> list[CommandDoc]:
    """The app and every command under it, depth first in --help order (hidden ones left out)."""
    root = typer.main.get_command(app)
    return list(_walk(root, (name,), None))


def _walk(
    command: Any,  # typer vendors click privately (typer._click): no public class to name
    path: tuple[str, ...],
    parent: typer.Context | None,
) -> Iterator[CommandDoc]:
    ctx = typer.Context(command, parent=parent, info_name=path[-1])
    subs: list[tuple[str, Any]] = []
    if isinstance(command, TyperGroup):
        for sub in command.list_commands(ctx):
            found = command.get_command(ctx, sub)
            if found is not None and not found.hidden:
                subs.append((sub, found))
    yield CommandDoc(
        path=path,
        help=(command.help or "").strip(),
        usage=" ".join([*path, *command.collect_usage_pieces(ctx)]),
        params=tuple(doc for p in command.params if (doc := _param(p, ctx)) is not None),
        subcommands=tuple(n for n, _ in subs),
    )
    for sub, found in subs:
        yield from _walk(found, (*path, sub), ctx)


def _param(param: TyperArgument | TyperOption, ctx: typer.Context) -> ParamDoc | None:
    record = param.get_help_record(ctx)
    if record is None:  # hidden
        return None
    shown, text = record
    if param.param_type_name == "argument":  # "model <path>", "files... <list[Path]>"
        names, _, kind = shown.partition(" ")
    else:  # "--cuts <int range>", "--zoo / --no-zoo"
        names = ", ".join(param.opts)
        if param.secondary_opts:
            names += " / " + ", ".join(param.secondary_opts)
        kind = shown.removeprefix(names)
    kind = kind.strip().strip("<>").removesuffix(" range") or "flag"
    # --help appends "  [default: …; x>=1; required]" to the help; split it back out.
    default, extra = "", []
    help_text, sep, tail = text.rpartition("  [")
    if sep and tail.endswith("]"):
        for piece in tail[:-1].split("; "):
            if piece.startswith("default: "):
                default = piece.removeprefix("default: ")
            elif piece == "required":
                continue
            elif RANGE.fullmatch(piece):
                kind += f" ({piece})"
            else:
                extra.append(piece)
    else:
        help_text = text
    if extra:
        help_text = f"{help_text} ({'; '.join(extra)})"
    return ParamDoc(
        kind=param.param_type_name,
        names=names,
        type=kind,
        default=default,
        required=bool(param.required),
        help=help_text.strip(),
    )


INTRO = """# CLI reference

Generated from the commands' `--help` by `python -m tierml.cli.reference --write`; do not
edit by hand. Every command takes `--format table|json`; errors are one line on stderr,
`error[CODE]: what. Hint: what to do.`, with exit status 2 (`tierml --debug …` shows the
traceback). New to tierml? Start with the [user guide](guide.md).
"""


def cli_reference(app: typer.Typer = tierml_app) -> str:
    docs = command_docs(app)
    parts = [INTRO, "| command | what it does |", "|---|---|"]
    for doc in docs[1:]:
        parts.append(f"| [`{doc.name}`](#{_anchor(doc.name)}) | {_cell(doc.summary)} |")
    parts.append("")
    for doc in docs:
        parts += _section(doc)
    return "\n".join(parts).rstrip("\n") + "\n"


def _section(doc: CommandDoc) -> list[str]:
    level = "#" * min(len(doc.path) + 1, 4)
    out = [f"{level} `{doc.name}`", "", "```text", doc.help, "```", ""]
    out += ["Usage:", "", "```", doc.usage, "```", ""]
    if doc.params:
        out += ["| argument / option | type | default | help |", "|---|---|---|---|"]
        for p in doc.params:
            default = "required" if p.required else p.default
            out.append(
                f"| `{_cell(p.names)}` | {_cell(p.type)} | {_cell(default)} | {_cell(p.help)} |"
            )
        out.append("")
    if doc.subcommands:
        anchors = [_anchor(f"{doc.name} {sub}") for sub in doc.subcommands]
        links = ", ".join(f"[`{s}`](#{a})" for s, a in zip(doc.subcommands, anchors, strict=True))
        out += [f"Commands: {links}.", ""]
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading `` `tierml zoo build` ``: lowercase, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


REFERENCE = GeneratedDoc("docs/cli.md", "tierml.cli.reference", cli_reference)

if __name__ == "__main__":
    sys.exit(run(REFERENCE))
