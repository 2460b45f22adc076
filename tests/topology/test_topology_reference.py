"""The topology keys are declared once: validation reads the declarations and
docs/topology-reference.md is rendered from them."""

from __future__ import annotations

import tomllib

import pytest

from tierml.catalog import load_catalog
from tierml.core.errors import TopologyError
from tierml.plan.problem import Mode, SloStat
from tierml.topology import parse_topology
from tierml.topology.keys import CONSTRAINTS, OBJECTIVE, SECTIONS, TIER, WORKLOAD
from tierml.topology.loading import resolve
from tierml.topology.reference import EXAMPLE, REFERENCE

MINIMAL = {"tier": [{"name": "phone", "profile": "phone-midrange"}]}
# Declared key → the field of the parsed object it sets, where the names differ.
FIELDS = {
    "latency": "latency_per_ms",
    "cost": "cost_per_usd_per_million",
    "energy": "energy_per_mj",
    "slo": "slo_stat",
    "memory": "enforce_memory",
}


def problems(data: dict) -> tuple[str, ...]:
    with pytest.raises(TopologyError) as err:
        parse_topology(data, "t.toml")
    return err.value.problems


def test_docs_topology_reference_md_is_current():
    message = REFERENCE.stale_message()
    assert message is None, message  # "… is stale: run `python -m … --write`"


def test_the_reference_example_parses_and_resolves(tmp_path):
    topology = parse_topology(tomllib.loads(EXAMPLE), "example")
    resolved = resolve(topology, load_catalog([], home=tmp_path))
    assert [t.name for t in resolved.tiers] == ["phone", "edge", "cloud"]
    assert resolved.links[2].link.rtt_ms == 70.0


def test_declared_defaults_are_the_parsed_defaults():
    topology = parse_topology(MINIMAL, "t.toml")
    parsed = {
        "objective": (OBJECTIVE, topology.objective),
        "constraints": (CONSTRAINTS, topology.constraints),
        "workload": (WORKLOAD, topology.workload),
        "tier": (TIER, topology.tiers[0]),
    }
    for keys, value in parsed.values():
        for key in keys.values():
            if key.default is not None:
                assert getattr(value, FIELDS.get(key.name, key.name)) == key.default, key.name
    assert OBJECTIVE["mode"].choices == tuple(m.value for m in Mode)
    assert CONSTRAINTS["slo"].choices == tuple(s.value for s in SloStat)


@pytest.mark.parametrize("section", ["objective", "constraints", "workload"])
def test_every_declared_key_is_validated_by_its_type(section):
    keys = SECTIONS[section]
    table = {k.name: "x" for k in keys.values()} | {"bogus": 1}
    found = problems(MINIMAL | {section: table})
    for key in keys.values():
        assert any(p.startswith(f"t.toml: {section}.{key.name}: must be") for p in found), key
    expected = ", ".join(sorted(keys))
    assert f"t.toml: {section}.bogus: unknown key; expected one of {expected}" in found


def test_problems_are_worded_as_before():
    data = {
        "name": 7,
        "tier": [
            {"name": "phone", "profile": "phone-midrange", "slowdown": -2, "trusted": "yes"},
            {"name": "cloud", "vm": "c6i.large", "hybrid": True, "faas_memory_mb": [0]},
        ],
        "link": [{"from": "phone", "to": "cloud", "uplink_mbps": 0, "rtt_ms": 5, "loss": 1}],
        "objective": {"mode": "fastest", "cost": True},
        "constraints": {"accuracy_floor": 2, "slo": "p99", "memory": 1},
        "workload": {"requests_per_second": 0, "faas_keep_alive_s": -1},
    }
    assert problems(data) == (
        "t.toml: tier[0].trusted: must be true or false, got 'yes'",
        "t.toml: tier[0].slowdown: must be > 0.0, got -2",
        "t.toml: tier[1].faas_memory_mb: must be a list of positive integers (MB)",
        "t.toml: tier[1].hybrid: needs both vm and faas on the tier",
        "t.toml: link[0].uplink_mbps: must be > 0.0, got 0",
        "t.toml: link[0].loss: must be below 1, got 1.0",
        "t.toml: objective.mode: must be latency or throughput, got 'fastest'",
        "t.toml: objective.cost: must be a number, got True",
        "t.toml: constraints.slo: must be mean or p95, got 'p99'",
        "t.toml: constraints.accuracy_floor: is a fraction in [0, 1], got 2.0",
        "t.toml: constraints.memory: must be true or false, got 1",
        "t.toml: workload.requests_per_second: must be > 0.0, got 0",
        "t.toml: workload.faas_keep_alive_s: must be ≥ 0.0, got -1",
        "t.toml: name: must be a string, got 7",
    )


def test_a_present_but_invalid_figure_is_not_also_reported_missing():
    link = {"from": "phone", "to": "cloud", "uplink_mbps": -5, "rtt_ms": 20}
    tiers = [{"name": "phone", "profile": "phone-midrange"}, {"name": "cloud", "vm": "c6i.large"}]
    with pytest.raises(TopologyError) as err:
        parse_topology({"tier": tiers, "link": [link]}, "t.toml")
    message = str(err.value)
    assert "link[0].uplink_mbps: must be > 0.0, got -5" in message
    assert "needs a profile" not in message
    # Likewise a malformed vm (or hybrid), and a malformed [[tier]] array.
    cloud = {"name": "cloud", "vm": 5, "faas": "lambda", "hybrid": True}
    assert problems({"tier": [tiers[0], cloud]}) == (
        "t.toml: tier[1].vm: must be a VM profile name or a list of them",
    )
    assert problems({"tier": 5, "link": [link]}) == (
        "t.toml: tier: must be an array of tables ([[tier]])",
        "t.toml: link[0].uplink_mbps: must be > 0.0, got -5",
    )
    # An absent figure is still missing.
    del link["rtt_ms"]
    assert "t.toml: link[0]: needs a profile, or uplink_mbps and rtt_ms" in problems(
        {"tier": tiers, "link": [link]}
    )
