"""The catalog's TOML schema: fields per section, and parsing that reports every problem.

A catalog file holds ``format = "tierml.catalog/1"`` and any of the sections ``[tier.NAME]``,
``[faas.NAME]``, ``[link.NAME]``, ``[radio.NAME]``. Each numeric figure an entry gives must
have a ``sources`` string under the same key: a figure without provenance is rejected.
Parsing never stops at the first problem; it returns them all, each with file and key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tierml.core.tiers import (
    FaasProfile,
    LinkProfile,
    RadioProfile,
    Throughput,
    TierKind,
    TierProfile,
)

FORMAT = "tierml.catalog/1"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
SECTIONS = ("tier", "faas", "link", "radio")


@dataclass(frozen=True)
class Field:
    kind: str  # "str", "int", "float", "bool", "fraction", "kind", "sizes"
    required: bool = True
    doc: str = ""

    @property
    def numeric(self) -> bool:
        return self.kind in ("int", "float", "fraction", "sizes")


FIELDS: Mapping[str, Mapping[str, Field]] = {
    "tier": {
        "kind": Field("kind", doc="device, edge or cloud"),
        "description": Field("str", doc="what it is: model, CPU, memory, how it runs inference"),
        "cores": Field("int", doc="cores inference uses"),
        "memory_mb": Field("int", doc="memory available to inference, MB"),
        "conv_gflops": Field("float", doc="effective fp32 GFLOP/s on CNN convolutions, batch 1"),
        "gemm_gflops": Field("float", doc="effective fp32 GFLOP/s on batch-1 matmuls"),
        "memory_gbps": Field("float", doc="effective memory bandwidth, GB/s"),
        "power_active_w": Field(
            "float", required=False, doc="power under inference load, W (required for devices)"
        ),
        "power_idle_w": Field("float", required=False, doc="idle power, W"),
        "battery": Field("bool", required=False, doc="runs on battery (default false)"),
        "trusted": Field("bool", required=False, doc="may see raw inputs (default: devices)"),
        "usd_per_hour": Field("float", required=False, doc="on-demand IaaS price"),
        "accelerator": Field("str", required=False, doc="GPU/NPU the figures are for, if any"),
    },
    "faas": {
        "provider": Field("str", doc="e.g. aws, gcp, azure"),
        "description": Field("str", doc="offering, architecture, region of the prices"),
        "usd_per_gb_s": Field("float", doc="price per GB-second of configured memory, USD"),
        "usd_per_request": Field("float", doc="price per invocation, USD"),
        "memory_mb": Field("sizes", doc="memory sizes a plan may choose"),
        "mb_per_vcpu": Field("float", doc="memory at which one full vCPU is allocated"),
        "max_vcpus": Field("int", doc="vCPUs at the largest memory size"),
        "conv_gflops_per_vcpu": Field("float", doc="conv_gflops of one full vCPU"),
        "gemm_gflops_per_vcpu": Field("float", doc="gemm_gflops of one full vCPU"),
        "memory_gbps_per_vcpu": Field("float", doc="memory_gbps of one full vCPU"),
        "cold_start_ms": Field("float", doc="extra latency of a request that starts an instance"),
    },
    "link": {
        "description": Field("str", doc="what network, between which tiers"),
        "uplink_mbps": Field("float", doc="device → edge → cloud direction, Mbit/s"),
        "downlink_mbps": Field("float", doc="the return direction, Mbit/s"),
        "rtt_ms": Field("float", doc="round-trip time, ms"),
        "loss": Field("fraction", doc="fraction of packets lost, 0 to 1"),
        "jitter_ms": Field(
            "float", required=False, doc="spread of the one-way delay, ms (default 0)"
        ),
        "radio": Field("str", required=False, doc="radio profile a device uses on this link"),
    },
    "radio": {
        "description": Field("str", doc="radio technology and where the model comes from"),
        "uplink_mw_per_mbps": Field("float", doc="α_u of P = α_u·t_u + α_d·t_d + β"),
        "downlink_mw_per_mbps": Field("float", doc="α_d"),
        "base_mw": Field("float", doc="β"),
        "tail_ms": Field(
            "float", required=False, doc="time in the high-power state after a transfer"
        ),
        "tail_mw": Field("float", required=False, doc="power during the tail, mW"),
    },
}
# Figures that may be zero (a free tier, a lossless link); all others must be positive.
MAY_BE_ZERO = frozenset({"usd_per_hour", "usd_per_request", "loss", "jitter_ms", "power_idle_w"})
MAY_BE_ZERO |= {"tail_ms", "tail_mw", "rtt_ms", "downlink_mw_per_mbps", "cold_start_ms"}

Profile = TierProfile | FaasProfile | LinkProfile | RadioProfile


@dataclass(frozen=True)
class ParsedFile:
    entries: Mapping[str, Mapping[str, Profile]]  # section → name → profile
    problems: tuple[str, ...]


def parse_catalog(data: Mapping[str, Any], origin: str) -> ParsedFile:
    """Profiles from one file's TOML table, and every problem found in it."""
    problems: list[str] = []
    if data.get("format") != FORMAT:
        problems.append(f'{origin}: format: expected "{FORMAT}", got {data.get("format")!r}')
    for key in data:
        if key != "format" and key not in SECTIONS:
            problems.append(
                f"{origin}: [{key}]: unknown section; expected one of {', '.join(SECTIONS)}"
            )
    entries: dict[str, dict[str, Profile]] = {s: {} for s in SECTIONS}
    for section in SECTIONS:
        table = data.get(section, {})
        if not isinstance(table, Mapping):
            problems.append(f"{origin}: {section}: expected tables [{section}.NAME]")
            continue
        for name, raw in table.items():
            where = f"{origin}: [{section}.{name}]"
            if not NAME.fullmatch(name):
                problems.append(f"{where}: name must match {NAME.pattern}")
            if not isinstance(raw, Mapping):
                problems.append(f"{where}: expected a table of fields")
                continue
            values, errors = _fields(section, raw, where)
            device = section == "tier" and values.get("kind") is TierKind.DEVICE
            if device and "power_active_w" not in raw:
                errors.append(f"{where} power_active_w: missing (required for devices)")
            problems += errors
            if not errors:
                entries[section][name] = _BUILDERS[section](name, values, origin)
    return ParsedFile(entries, tuple(problems))


def _fields(section: str, raw: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    spec = FIELDS[section]
    values: dict[str, Any] = {}
    problems = []
    sources = raw.get("sources", {})
    if not isinstance(sources, Mapping):
        problems.append(f"{where} sources: expected a table of strings")
        sources = {}
    for key in raw:
        if key != "sources" and key not in spec:
            problems.append(f"{where} {key}: unknown field; known: {', '.join(spec)}")
    for key in sources:
        if key not in spec or not spec[key].numeric:
            problems.append(f"{where} sources.{key}: not a numeric field of [{section}]")
        elif not isinstance(sources[key], str) or not sources[key].strip():
            problems.append(f"{where} sources.{key}: expected a non-empty string")
    for key, f in spec.items():
        if key not in raw:
            if f.required:
                problems.append(f"{where} {key}: missing ({f.kind}{', ' + f.doc if f.doc else ''})")
            continue
        value, error = _check(key, f, raw[key])
        if error:
            problems.append(f"{where} {key}: {error}")
            continue
        if f.numeric and key not in sources:
            problems.append(f"{where} sources.{key}: missing; every figure needs its source")
        values[key] = value
    values["sources"] = {k: str(v) for k, v in sources.items()}
    return values, problems


def _check(key: str, f: Field, value: Any) -> tuple[Any, str]:
    if f.kind == "str":
        ok = isinstance(value, str) and value.strip() != ""
        return (value, "") if ok else (None, f"expected a non-empty string, got {value!r}")
    if f.kind == "bool":
        return (
            (value, "")
            if isinstance(value, bool)
            else (None, f"expected true/false, got {value!r}")
        )
    if f.kind == "kind":
        kinds = [k.value for k in TierKind]
        if value in kinds:
            return TierKind(value), ""
        return None, f"expected one of {', '.join(kinds)}, got {value!r}"
    if f.kind == "sizes":
        if not isinstance(value, list) or not value:
            return None, f"expected a non-empty list of sizes in MB, got {value!r}"
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v <= 0]
        if bad:
            return None, f"expected positive integers, got {bad!r}"
        return tuple(sorted(set(value))), ""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if f.kind == "int" and (not number or value != int(value)):
        return None, f"expected an integer, got {value!r}"
    if not number or not math.isfinite(value):
        return None, f"expected a number, got {value!r}"
    if f.kind == "fraction" and not 0 <= value <= 1:
        return None, f"expected a fraction between 0 and 1, got {value!r}"
    if value < 0 or (value == 0 and key not in MAY_BE_ZERO):
        return None, f"expected a positive number, got {value!r}"
    return (int(value) if f.kind == "int" else float(value)), ""


def _tier(name: str, v: Mapping[str, Any], origin: str) -> TierProfile:
    kind = v["kind"]
    return TierProfile(
        name=name,
        kind=kind,
        description=v["description"],
        cores=v["cores"],
        memory_mb=v["memory_mb"],
        throughput=Throughput(v["conv_gflops"], v["gemm_gflops"], v["memory_gbps"]),
        power_active_w=v.get("power_active_w"),
        power_idle_w=v.get("power_idle_w"),
        battery=v.get("battery", False),
        trusted=v.get("trusted", kind is TierKind.DEVICE),
        usd_per_hour=v.get("usd_per_hour"),
        accelerator=v.get("accelerator"),
        origin=origin,
        sources=v["sources"],
    )


def _faas(name: str, v: Mapping[str, Any], origin: str) -> FaasProfile:
    return FaasProfile(
        name=name,
        provider=v["provider"],
        description=v["description"],
        usd_per_gb_s=v["usd_per_gb_s"],
        usd_per_request=v["usd_per_request"],
        memory_mb=v["memory_mb"],
        mb_per_vcpu=v["mb_per_vcpu"],
        max_vcpus=v["max_vcpus"],
        per_vcpu=Throughput(
            v["conv_gflops_per_vcpu"], v["gemm_gflops_per_vcpu"], v["memory_gbps_per_vcpu"]
        ),
        cold_start_ms=v["cold_start_ms"],
        origin=origin,
        sources=v["sources"],
    )


def _link(name: str, v: Mapping[str, Any], origin: str) -> LinkProfile:
    return LinkProfile(
        name=name,
        description=v["description"],
        uplink_mbps=v["uplink_mbps"],
        downlink_mbps=v["downlink_mbps"],
        rtt_ms=v["rtt_ms"],
        loss=v["loss"],
        jitter_ms=v.get("jitter_ms", 0.0),
        radio=v.get("radio"),
        origin=origin,
        sources=v["sources"],
    )


def _radio(name: str, v: Mapping[str, Any], origin: str) -> RadioProfile:
    return RadioProfile(
        name=name,
        description=v["description"],
        uplink_mw_per_mbps=v["uplink_mw_per_mbps"],
        downlink_mw_per_mbps=v["downlink_mw_per_mbps"],
        base_mw=v["base_mw"],
        tail_ms=v.get("tail_ms", 0.0),
        tail_mw=v.get("tail_mw", 0.0),
        origin=origin,
        sources=v["sources"],
    )


_BUILDERS: Mapping[str, Callable[[str, Mapping[str, Any], str], Profile]] = {
    "tier": _tier,
    "faas": _faas,
    "link": _link,
    "radio": _radio,
}
