"""The topology reference (docs/topology-reference.md), rendered from the key declarations.

python -m tierml.topology.reference --write    # (re)write docs/topology-reference.md
python -m tierml.topology.reference --check    # exit 1 when it is stale
"""

from __future__ import annotations

import sys

from tierml.generated_doc import GeneratedDoc, run
from tierml.topology.keys import SECTIONS, TOP, Section
from tierml.topology.schema import RULES

# A complete file: every section, most keys. A test parses it, so it stays valid.
EXAMPLE = """\
name = "phone-edge-cloud-4g"
description = "Phone → edge server → cloud (c6i VMs or Lambda), phone on LTE"

[[tier]]                            # in order: the first is where inputs originate
name = "phone"
profile = "phone-midrange"          # a catalog tier (`tierml catalog list`)

[[tier]]
name = "edge"
profile = "edge-ryzen-v1605b"
trusted = false                     # an operator's box: leakage counts what reaches it

[[tier]]
name = "cloud"
vm = ["c6i.large", "c6i.xlarge"]    # VM types to choose from …
faas = "aws-lambda-x86"             # … or a FaaS offering
faas_memory_mb = [1769, 3538]       # … at these sizes
hybrid = true                       # or a VM stage, then a FaaS stage

[[link]]
from = "phone"
to = "edge"
profile = "lte"                     # a catalog link

[[link]]
from = "edge"
to = "cloud"
profile = "wan"

[[link]]
from = "phone"
to = "cloud"
profile = "lte"
rtt_ms = 70.0                       # overrides the profile's figure

[objective]                         # minimise 1.0 × ms + 0.5 × $/M requests + 0.01 × mJ
latency = 1.0
cost = 0.5
energy = 0.01

[constraints]
slo_ms = 400
slo = "p95"                         # the 95th percentile must be ≤ 400 ms

[workload]
requests_per_second = 20
"""

TITLES = {
    "": "Top level",
    "tier": "`[[tier]]`: a place to run (one table per tier, in order)",
    "link": "`[[link]]`: the network between two tiers",
    "objective": "`[objective]`: what the plan minimises",
    "constraints": "`[constraints]`: what every plan must meet",
    "workload": "`[workload]`: the request stream",
}

INTRO = f"""# Topology reference

Generated from the schema (`tierml/topology/keys.py`) by
`python -m tierml.topology.reference --write`; do not edit by hand.

A topology file is TOML. It says where a model may run (tiers, in order from where inputs
originate), how the tiers are connected (links), what to minimise (objective), what must
hold (constraints) and how many requests come (workload). Hardware, prices and networks are
named from the catalog (`tierml catalog list`; [catalog reference](catalog.md)) or given as
figures. `tierml plan MODEL --topology FILE` reads it; every problem in a file is reported
at once, each with its key (`tier[1].slowdown: must be > 0.0, got -2`). How the figures
become latency, cost, energy, accuracy and leakage: [planning](planning.md). Five complete
files: [examples/topologies/](../examples/topologies/).

The plan minimises

    latency × ms + cost × ($ per million requests) + leakage × leakage + energy × mJ

(in throughput mode the ms are the bottleneck's) over the plans that meet every constraint.

```toml
{EXAMPLE}```
"""


def topology_reference() -> str:
    parts = [INTRO]
    for name, keys in SECTIONS.items():
        parts.append(f"## {TITLES[name]}\n")
        if name:
            parts.append(TOP[name].doc + "\n")
        parts.append(_table(keys))
        rules = RULES.get(name, ())
        if rules:
            parts.append("Rules:\n")
            parts += [f"- {rule}" for rule in rules]
            parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


def _table(keys: Section) -> str:
    rows = ["| key | type | default | unit | meaning |", "|---|---|---|---|---|"]
    for key in keys.values():
        cells = (f"`{key.name}`", key.type_text, key.default_text, key.unit, key.doc)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"


REFERENCE = GeneratedDoc(
    "docs/topology-reference.md", "tierml.topology.reference", topology_reference
)

if __name__ == "__main__":
    sys.exit(run(REFERENCE))
