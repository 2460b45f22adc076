"""Every key of a topology file: its type, default, unit and meaning, declared once.

The schema validates against these declarations (unknown keys, types, bounds, defaults)
and docs/topology-reference.md is rendered from them, so the two cannot disagree.
Rules that tie keys together (a tier needs a profile or vm/faas; a link needs a profile or
uplink_mbps and rtt_ms; links flow forward) live in the schema and are stated in the docs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

# "number": int or float (bounds below); "fraction": a number in [0, 1]; "boolean";
# "string"; "choice": one of `choices`; "strings": one string or a list of them;
# "integers": a list of positive integers; "tables": an array of tables ([[tier]]);
# "table": a table ([objective]).
KeyType = Literal[
    "number", "fraction", "boolean", "string", "choice", "strings", "integers", "tables", "table"
]


@dataclass(frozen=True)
class Key:
    name: str
    type: KeyType
    doc: str
    default: float | bool | str | None = None  # the value used when the key is absent
    when_absent: str = ""  # the docs' default when it is not `default` (e.g. "the profile's")
    required: bool = False
    unit: str = ""
    minimum: float | None = None  # numbers: the lowest value …
    inclusive: bool = False  # … and whether the minimum itself is allowed
    below: float | None = None  # numbers: an exclusive upper bound
    choices: tuple[str, ...] = ()

    @property
    def type_text(self) -> str:
        """The type as the reference states it: `number > 0`, `"mean" or "p95"`."""
        if self.type == "number":
            if self.minimum is not None and self.below is not None:
                return f"number in [{self.minimum:g}, {self.below:g})"
            if self.minimum is not None:
                return f"number {'≥' if self.inclusive else '>'} {self.minimum:g}"
            return "number"
        return {
            "fraction": "number in [0, 1]",
            "choice": " or ".join(f'"{c}"' for c in self.choices),
            "strings": "string or list of strings",
            "integers": "list of integers > 0",
            "tables": "array of tables",
        }.get(self.type, self.type)

    @property
    def default_text(self) -> str:
        if self.required:
            return "required"
        if self.when_absent:
            return self.when_absent
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return f"{self.default:g}"


Section = Mapping[str, Key]


def section(*keys: Key) -> Section:
    return {k.name: k for k in keys}


TOP = section(
    Key(
        "name",
        "string",
        "The topology's name, shown in plan output.",
        when_absent="the file's path",
    ),
    Key("description", "string", "One line on what the topology describes.", default=""),
    Key(
        "tier",
        "tables",
        "The tiers, in order: data only flows from a tier to a later one. "
        "The first is where inputs originate and results return.",
        when_absent="at least one",
    ),
    Key(
        "link",
        "tables",
        "The networks between tiers. Tiers without a direct link talk "
        "through the tiers between them (store and forward).",
        when_absent="none",
    ),
    Key(
        "objective",
        "table",
        "The weights of the sum the plan minimises.",
        when_absent="latency only",
    ),
    Key("constraints", "table", "Limits every plan must meet.", when_absent="memory only"),
    Key(
        "workload",
        "table",
        "The request stream the costs are computed for.",
        when_absent="1 request/s",
    ),
)

TIER = section(
    Key("name", "string", "Unique name; links and plan output refer to it.", required=True),
    Key(
        "profile",
        "string",
        "A catalog tier profile (`tierml catalog list`): the device or "
        "edge hardware, or a cloud VM type.",
        when_absent="required unless `vm` or `faas`",
    ),
    Key(
        "trusted",
        "boolean",
        "May see the raw input and unprotected activations; leakage "
        "counts what reaches an untrusted tier.",
        when_absent="the profile's (devices: true, others: false; FaaS only: false)",
    ),
    Key(
        "slowdown",
        "number",
        "Divide the profile's throughput by this, to model (and, when "
        "deployed, emulate) a slower device.",
        default=1.0,
        minimum=0.0,
    ),
    Key(
        "vm",
        "strings",
        "Cloud: the VM types (catalog tier profiles) the plan chooses among.",
        when_absent="none",
    ),
    Key(
        "faas",
        "string",
        "Cloud: a catalog FaaS offering the plan may use instead of a VM "
        "(`tierml catalog list --section faas`).",
        when_absent="none",
    ),
    Key(
        "faas_memory_mb",
        "integers",
        "The FaaS memory sizes the plan chooses among; each must be one the offering lists.",
        when_absent="every size the offering lists",
        unit="MB",
    ),
    Key(
        "hybrid",
        "boolean",
        "Cloud: also allow a VM stage followed by a FaaS stage (deep "
        "stages that few requests reach are cheap on FaaS). Needs `vm` and `faas`.",
        default=False,
    ),
    Key(
        "hybrid_mbps",
        "number",
        "Bandwidth between the VM stage and the FaaS stage of a hybrid tier.",
        default=10_000.0,
        unit="Mbit/s",
        minimum=0.0,
    ),
    Key(
        "hybrid_rtt_ms",
        "number",
        "Round-trip time between the VM stage and the FaaS stage of a hybrid tier.",
        default=1.0,
        unit="ms",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "memory_mb",
        "number",
        "Memory for the weights of the stages placed here, replacing "
        "the profile's (see `[constraints] memory`).",
        when_absent="the profile's",
        unit="MB",
        minimum=0.0,
    ),
)

LINK = section(
    Key("from", "string", "The sending tier's name.", required=True),
    Key(
        "to",
        "string",
        "The receiving tier's name; it must come after `from` in the tier order.",
        required=True,
    ),
    Key(
        "profile",
        "string",
        "A catalog link profile (`tierml catalog list --section link`); "
        "the keys below override its figures.",
        when_absent="required unless `uplink_mbps` and `rtt_ms`",
    ),
    Key(
        "uplink_mbps",
        "number",
        "Bandwidth from `from` to `to` (lost packets are resent: "
        "the goodput is this × (1 − loss)).",
        when_absent="the profile's",
        unit="Mbit/s",
        minimum=0.0,
    ),
    Key(
        "downlink_mbps",
        "number",
        "Bandwidth of the way back (results, to `from`).",
        when_absent="the profile's, else `uplink_mbps`",
        unit="Mbit/s",
        minimum=0.0,
    ),
    Key(
        "rtt_ms",
        "number",
        "Round-trip time, paid once per crossing.",
        when_absent="the profile's",
        unit="ms",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "loss",
        "number",
        "Share of packets lost.",
        when_absent="the profile's, else 0",
        unit="fraction",
        below=1.0,
        minimum=0.0,
        inclusive=True,
    ),
)

OBJECTIVE = section(
    Key(
        "latency",
        "number",
        "Weight per ms of expected latency (in throughput mode: of the bottleneck).",
        default=1.0,
        unit="per ms",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "cost",
        "number",
        "Weight per $ per million requests (VM hours amortised over the "
        "request rate, FaaS GB-seconds and requests).",
        default=0.0,
        unit="per $ per million requests",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "leakage",
        "number",
        "Weight of leakage: how much of the input can be reconstructed "
        "from what reaches an untrusted tier, 1.0 being the raw input itself.",
        default=0.0,
        unit="per unit of leakage",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "energy",
        "number",
        "Weight per mJ the first (battery) device spends per request: "
        "compute, idle waiting and radio.",
        default=0.0,
        unit="per mJ",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "mode",
        "choice",
        "`latency`: one request at a time, its expected end-to-end "
        "latency. `throughput`: a pipelined stream, the slowest stage (the busiest site over "
        "its instances, or the slowest link's transfer).",
        default="latency",
        choices=("latency", "throughput"),
    ),
)

CONSTRAINTS = section(
    Key(
        "slo_ms",
        "number",
        "Latency limit; `slo` says which statistic it bounds.",
        unit="ms",
        minimum=0.0,
    ),
    Key(
        "slo",
        "choice",
        "`mean`: the expected latency; `p95`: the 95th percentile over "
        "request paths (each exit, the full model, warm or cold FaaS).",
        default="mean",
        choices=("mean", "p95"),
    ),
    Key(
        "accuracy_floor",
        "fraction",
        "Lowest accuracy accepted: the exit setting's accuracy "
        "minus the variant, codec and noise drops.",
        unit="fraction",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "max_leakage",
        "number",
        "Highest leakage accepted (1.0: the raw input).",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "raw_input_trusted_only",
        "boolean",
        "The raw input may reach trusted tiers only.",
        default=False,
    ),
    Key(
        "budget_per_million",
        "number",
        "Highest cost accepted.",
        unit="$ per million requests",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "memory",
        "boolean",
        "Every site must hold the weights of the stages placed on it (`false`: ignore memory).",
        default=True,
    ),
)

WORKLOAD = section(
    Key(
        "requests_per_second",
        "number",
        "Request rate: sets how many VM instances are "
        "needed and how often a FaaS instance starts cold.",
        default=1.0,
        unit="1/s",
        minimum=0.0,
    ),
    Key(
        "vm_utilisation",
        "fraction",
        "Target busy share of a VM instance before another is added.",
        default=0.7,
        minimum=0.0,
    ),
    Key(
        "faas_keep_alive_s",
        "number",
        "Idle time before a warm FaaS instance is reclaimed (the next request then starts cold).",
        default=300.0,
        unit="s",
        minimum=0.0,
        inclusive=True,
    ),
    Key(
        "sporadic",
        "boolean",
        "Requests arrive far apart: each pays the radio's whole tail "
        "energy (in a stream the radio stays in its high-power state).",
        default=False,
    ),
)

SECTIONS: Mapping[str, Section] = {
    "": TOP,
    "tier": TIER,
    "link": LINK,
    "objective": OBJECTIVE,
    "constraints": CONSTRAINTS,
    "workload": WORKLOAD,
}
