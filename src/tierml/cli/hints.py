"""What to do about an error, in the words of the command that failed.

The library says what kind of fix applies (a :class:`~tierml.core.errors.Remedy`) and gives
the values it needs as details; this is the one place that names options and commands. A
phrasing is used only when the failed command has every option it names, so a hint never
points at an option the user cannot pass; otherwise the library's own hint stands.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from typer.core import TyperGroup

from tierml.core.errors import Remedy, TiermlError


@dataclass(frozen=True)
class Phrasing:
    template: str  # str.format over the error's details
    options: tuple[str, ...] = ()  # options of the failed command the text names


PHRASINGS: dict[Remedy, Phrasing] = {
    Remedy.FIX_SHAPE: Phrasing(
        "Fix it with --shape {input}={example} or give real arrays with --inputs FILE.npz.",
        ("--shape", "--inputs"),
    ),
    Remedy.SET_BATCH: Phrasing(
        "Use --batch {value}, or re-export the model with a dynamic batch.", ("--batch",)
    ),
    Remedy.REAL_INPUTS: Phrasing(
        "Give real input arrays with --inputs FILE.npz if the model needs valid values.",
        ("--inputs",),
    ),
    Remedy.INSPECT_MODEL: Phrasing("`tierml inspect MODEL` lists the model's tensors."),
    Remedy.LIST_CUTS: Phrasing("`tierml cuts MODEL` lists the valid cuts."),
    Remedy.CUT_SYNTAX: Phrasing(
        "Give --cut TENSOR[,TENSOR...] or --cut @N (from `tierml cuts MODEL`).", ("--cut",)
    ),
    Remedy.ADD_CUT_TENSOR: Phrasing("Add it: --cut {tensors}", ("--cut",)),
    Remedy.OVERWRITE: Phrasing("Choose a new directory or pass --overwrite.", ("--overwrite",)),
    Remedy.CALIBRATE: Phrasing("Run `tierml calibrate --threads {threads}` first."),
    Remedy.CALIBRATION_FILE: Phrasing(
        "Pass a file written by `tierml calibrate --out FILE` with --params.", ("--params",)
    ),
    Remedy.RESPLIT: Phrasing("Split the model again with `tierml split MODEL --cut … --out DIR`."),
    Remedy.REBUILD_BUNDLE: Phrasing("Rebuild it with `tierml plan MODEL --topology T --out DIR`."),
    Remedy.DEPLOY_FIRST: Phrasing("Start it first: `tierml deploy {bundle} --local`."),
    Remedy.LOCAL_DEPLOY: Phrasing("Pass --local to start the tiers on this machine.", ("--local",)),
    Remedy.LIST_CATALOG: Phrasing("See `tierml catalog list`."),
    Remedy.ADD_CATALOG: Phrasing(
        "Use a name from `tierml catalog list`, or add it in a catalog file with --catalog.",
        ("--catalog",),
    ),
    Remedy.NAME_TIER: Phrasing("Add --tier NAME (see `tierml catalog list`).", ("--tier",)),
    Remedy.REGISTER_MODEL: Phrasing("Register it first: `tierml model add {model} FILE.onnx`."),
    Remedy.SHOW_MODEL: Phrasing("See it with `tierml model show {model}`."),
    Remedy.SHOW_VARIANTS: Phrasing(
        "See them with `tierml variant list {model} --version {version}`."
    ),
    Remedy.ADD_RECIPE: Phrasing(
        "Declare it with `tierml variant add-recipe {model} {recipe} --transform T`."
    ),
    Remedy.REGISTER_EVAL: Phrasing(
        "Register the version with `tierml model add NAME FILE --eval DATA.npz` (inputs and "
        "integer labels)."
    ),
    Remedy.TRANSFORM_PARAM: Phrasing("Example: --param {key}={example}", ("--param",)),
    Remedy.REGISTRY_URL: Phrasing(
        "Check the URL (--db or TIERML_REGISTRY_URL) and that the database server is up.",
        ("--db",),
    ),
    Remedy.WRITABLE_HOME: Phrasing("Set TIERML_HOME to a writable directory."),
    Remedy.WRITABLE_OUT: Phrasing("Pass --out with a writable path.", ("--out",)),
    Remedy.DATASET: Phrasing(
        "Pass --data mnist5k, --data digits or an .npz with arrays x and labels.", ("--data",)
    ),
    Remedy.EPSILON: Phrasing("Privacy budgets are ε > 0, e.g. --epsilon 100.", ("--epsilon",)),
    Remedy.DEFENCE: Phrasing(
        "--defend noise|regularise|adversarial, --mechanism laplace|gaussian.",
        ("--defend", "--mechanism"),
    ),
    Remedy.DEFENCE_WEIGHT: Phrasing(
        "The weight of a fine-tune's privacy term is λ > 0, e.g. --weight 90.", ("--weight",)
    ),
    Remedy.EXIT_TAP: Phrasing("Pass --tap TENSOR (repeatable).", ("--tap",)),
    Remedy.ADAPT_EXITS_AGAIN: Phrasing(
        "Run `tierml adapt exits MODEL --data DATA --profile CURVES` again: it records the "
        "grafted model the bundle is cut from."
    ),
    Remedy.ADAPT_CURVES: Phrasing(
        "Measure them with `tierml adapt exits MODEL --tap T --profile FILE` (or adapt codecs, "
        "adapt bottleneck, privacy)."
    ),
    Remedy.SPLIT_ARGS: Phrasing(
        "Example: `tierml split model.onnx --cut @3 --out parts/`.", ("--cut", "--out")
    ),
    Remedy.DATA_SHAPE: Phrasing(
        "Fix the input at the data's size with --shape {input}={example}, or pass --data "
        "with images of the size the input is fixed at.",
        ("--shape", "--data"),
    ),
    Remedy.ENROLL_TOKEN: Phrasing(
        "Pass the one-time enrolment token the control plane's operator issued: --token TOKEN.",
        ("--token",),
    ),
}

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# A command quoted in a hint: `tierml model add NAME FILE --eval DATA.npz`.
QUOTED_COMMAND = re.compile(r"`(tierml [^`]*)`")


def options_named(text: str) -> set[str]:
    """The ``--options`` a hint's text names for the failed command itself (those inside
    a quoted `tierml …` command belong to that command)."""
    return set(OPTION.findall(QUOTED_COMMAND.sub("", text)))


def quoted_commands(text: str) -> list[str]:
    """The `tierml …` commands a hint quotes, as written."""
    return QUOTED_COMMAND.findall(text)


def command_options(command: Any) -> set[str]:
    return {name for p in command.params for name in (*p.opts, *p.secondary_opts)}


def cli_hint(error: TiermlError, command: Any) -> str:
    """The hint to print for ``error`` raised by ``command``: the remedy in its options
    when it has them all and the details fill the phrasing, else the library's hint."""
    if error.remedy is None or command is None:
        return error.hint
    phrasing = PHRASINGS.get(error.remedy)
    if phrasing is None or not set(phrasing.options) <= command_options(command):
        return error.hint
    values = {
        k: ",".join(map(str, v)) if isinstance(v, tuple) else v for k, v in error.details.items()
    }
    try:
        return phrasing.template.format(**values)
    except (KeyError, IndexError):
        return error.hint


def resolve_command(root: Any, argv: Sequence[str]) -> Any:
    """The (sub)command ``argv`` names under ``root``: its words before the first argument
    that is not a subcommand (the root's own options are skipped)."""
    command = root
    for word in argv:
        if word.startswith("-"):
            continue
        if not isinstance(command, TyperGroup):
            break
        sub = command.commands.get(word)
        if sub is None:
            return None
        command = sub
    return command
