"""The messages between a device agent and the control plane, as plain JSON.

Every message is a frozen dataclass with ``to_dict`` and a checking ``from_dict``: what
arrives from the other side is untrusted, so a missing field, a wrong type or a value out
of range is a typed error naming the field, never a ``KeyError`` deep in a handler. The
same messages travel over HTTP (the body of a signed request) and MQTT (a signed payload).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tierml.core.errors import InputDataError

MAX_TEXT = 200  # names, ids, reasons: longer is refused, not truncated
MAX_BATCHES = 500  # telemetry batches in one upload
MAX_LIST = 64  # ops, commands, exits …


def _fail(message: str, where: str, value: object = None) -> InputDataError:
    shown = repr(value)[:60]
    return InputDataError(
        f"{message} ({where} = {shown}).",
        hint="Send the fields the protocol defines, with their types.",
        field=where,
    )


def _obj(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise _fail("expected an object", where, raw)
    return raw


def _text(raw: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> str | None:
    value = raw.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        raise _fail(f"'{key}' must be text of 1 to {MAX_TEXT} characters", f"{where}.{key}", value)
    return value


JSON_SAFE_INT = 2**53  # above this, JSON readers other than Python's lose digits
SEQ_MAX = 2**31 - 1  # the control plane keys batches by a 32-bit integer column


def _int(
    raw: Mapping[str, Any], key: str, where: str, *, minimum: int = 0, maximum: int = JSON_SAFE_INT
) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(
            f"'{key}' must be a whole number from {minimum} to {maximum}", f"{where}.{key}", value
        )
    return value


def _float(raw: Mapping[str, Any], key: str, where: str, *, minimum: float = 0.0) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(f"'{key}' must be a number", f"{where}.{key}", value)
    if not math.isfinite(value) or value < minimum:
        raise _fail(f"'{key}' must be a finite number ≥ {minimum}", f"{where}.{key}", value)
    return float(value)


def _plain(raw: object, where: str, depth: int = 0) -> Any:
    """JSON-shaped data of bounded depth and size (a device's reported state)."""
    if depth > 4:
        raise _fail("nested too deep", where)
    if raw is None or isinstance(raw, bool | int | str):
        if isinstance(raw, str) and len(raw) > MAX_TEXT:
            raise _fail("text too long", where, raw)
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise _fail("not a finite number", where, raw)
        return raw
    if isinstance(raw, list):
        if len(raw) > MAX_LIST:
            raise _fail(f"more than {MAX_LIST} items", where)
        return [_plain(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(raw)]
    if isinstance(raw, Mapping):
        if len(raw) > MAX_LIST:
            raise _fail(f"more than {MAX_LIST} keys", where)
        out = {}
        for k, v in raw.items():
            if not isinstance(k, str) or len(k) > MAX_TEXT:
                raise _fail("keys must be short text", where, k)
            out[k] = _plain(v, f"{where}.{k}", depth + 1)
        return out
    raise _fail("not JSON data", where, raw)


@dataclass(frozen=True)
class Running:
    """What a device runs now: the artifact and where it came from."""

    version: int
    variant: str  # "base" for the version itself
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: object, where: str = "running") -> Running:
        r = _obj(raw, where)
        sha = _text(r, "sha256", where) or ""
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise _fail("'sha256' must be 64 lowercase hex digits", f"{where}.sha256", sha)
        return cls(_int(r, "version", where, minimum=1), _text(r, "variant", where) or "", sha)


@dataclass(frozen=True)
class EnrollRequest:
    token: str
    public_key: str  # base64 of the device's raw Ed25519 public key
    name: str
    reported: Mapping[str, Any] = field(default_factory=dict)  # its device description

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reported": dict(self.reported)}

    @classmethod
    def from_dict(cls, raw: object) -> EnrollRequest:
        r = _obj(raw, "enroll")
        return cls(
            token=_text(r, "token", "enroll") or "",
            public_key=_text(r, "public_key", "enroll") or "",
            name=_text(r, "name", "enroll") or "",
            reported=_obj(_plain(r.get("reported", {}), "enroll.reported"), "enroll.reported"),
        )


@dataclass(frozen=True)
class CheckIn:
    reported: Mapping[str, Any]  # the device's state now: battery, charging, network …
    running: Running | None = None
    start_failures: int = 0  # failed starts of the assigned artifact since it arrived
    rolled_back: str | None = None  # the sha256 it rolled itself back from, if it did

    def to_dict(self) -> dict[str, Any]:
        return {
            "reported": dict(self.reported),
            "running": self.running.to_dict() if self.running else None,
            "start_failures": self.start_failures,
            "rolled_back": self.rolled_back,
        }

    @classmethod
    def from_dict(cls, raw: object) -> CheckIn:
        r = _obj(raw, "check_in")
        running = r.get("running")
        return cls(
            reported=_obj(_plain(r.get("reported", {}), "check_in.reported"), "reported"),
            running=None if running is None else Running.from_dict(running, "check_in.running"),
            start_failures=_int(r, "start_failures", "check_in") if "start_failures" in r else 0,
            rolled_back=_text(r, "rolled_back", "check_in", optional=True),
        )


@dataclass(frozen=True)
class TelemetryBatch:
    """What a device measured over a period, aggregated on the device (no raw inputs)."""

    seq: int  # per device, increasing: the control plane counts each once
    start: float  # the period, in seconds since the epoch (the device's clock)
    end: float
    running: Running | None
    requests: int
    errors: int
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_max: float
    exits: Mapping[str, int] = field(default_factory=dict)  # exit name → requests it took
    memory_mb_peak: float = 0.0
    energy_mj: float = 0.0  # estimated from the catalog's power figures
    dropped_before: int = 0  # batches the device's queue dropped before this one

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["running"] = self.running.to_dict() if self.running else None
        out["exits"] = dict(self.exits)
        return out

    @classmethod
    def from_dict(cls, raw: object, where: str = "batch") -> TelemetryBatch:
        r = _obj(raw, where)
        exits = _obj(r.get("exits", {}), f"{where}.exits")
        if len(exits) > MAX_LIST:
            raise _fail(f"more than {MAX_LIST} exits", f"{where}.exits")
        counted = {str(k): _int(exits, k, f"{where}.exits") for k in exits}
        running = r.get("running")
        batch = cls(
            seq=_int(r, "seq", where, minimum=1, maximum=SEQ_MAX),
            start=_float(r, "start", where),
            end=_float(r, "end", where),
            running=None if running is None else Running.from_dict(running, f"{where}.running"),
            requests=_int(r, "requests", where),
            errors=_int(r, "errors", where),
            latency_ms_p50=_float(r, "latency_ms_p50", where),
            latency_ms_p95=_float(r, "latency_ms_p95", where),
            latency_ms_max=_float(r, "latency_ms_max", where),
            exits=counted,
            memory_mb_peak=_float(r, "memory_mb_peak", where) if "memory_mb_peak" in r else 0.0,
            energy_mj=_float(r, "energy_mj", where) if "energy_mj" in r else 0.0,
            dropped_before=_int(r, "dropped_before", where) if "dropped_before" in r else 0,
        )
        if batch.errors > batch.requests or batch.end < batch.start:
            raise _fail("errors exceed requests, or the period ends before it starts", where)
        return batch


@dataclass(frozen=True)
class TelemetryUpload:
    batches: tuple[TelemetryBatch, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"batches": [b.to_dict() for b in self.batches]}

    @classmethod
    def from_dict(cls, raw: object) -> TelemetryUpload:
        r = _obj(raw, "telemetry")
        batches = r.get("batches")
        if not isinstance(batches, list) or not batches or len(batches) > MAX_BATCHES:
            raise _fail(f"'batches' must list 1 to {MAX_BATCHES} batches", "telemetry.batches")
        return cls(
            tuple(
                TelemetryBatch.from_dict(b, f"telemetry.batches[{i}]")
                for i, b in enumerate(batches)
            )
        )


@dataclass(frozen=True)
class Command:
    """Something the control plane asks of one device: ``check_in_now`` or ``roll_back``."""

    id: int
    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "args": dict(self.args)}

    @classmethod
    def from_dict(cls, raw: object, where: str = "command") -> Command:
        r = _obj(raw, where)
        args = _obj(_plain(r.get("args", {}), f"{where}.args"), f"{where}.args")
        return cls(_int(r, "id", where, minimum=1), _text(r, "kind", where) or "", args)


@dataclass(frozen=True)
class Assigned:
    """What the device should run: the artifact, why, and its manifest signed by the
    control plane (the device checks it with the key it pinned at enrolment)."""

    model: str
    version: int
    variant: str
    sha256: str
    size: int
    reason: str
    manifest: Mapping[str, Any]  # a SignedManifest's dict

    def running(self) -> Running:
        return Running(self.version, self.variant, self.sha256)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "manifest": dict(self.manifest)}

    @classmethod
    def from_dict(cls, raw: object, where: str = "assigned") -> Assigned:
        r = _obj(raw, where)
        running = Running.from_dict({k: r.get(k) for k in ("version", "variant", "sha256")}, where)
        reason = r.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 2000:
            raise _fail("'reason' must be text", f"{where}.reason", reason)
        return cls(
            model=_text(r, "model", where) or "",
            version=running.version,
            variant=running.variant,
            sha256=running.sha256,
            size=_int(r, "size", where),
            reason=reason,
            manifest=_obj(r.get("manifest"), f"{where}.manifest"),
        )


@dataclass(frozen=True)
class CheckInReply:
    assigned: Assigned | None  # None: nothing registered can run there (the reason is logged)
    commands: tuple[Command, ...] = ()
    check_in_s: int = 60

    def to_dict(self) -> dict[str, Any]:
        return {
            "assigned": self.assigned.to_dict() if self.assigned else None,
            "commands": [c.to_dict() for c in self.commands],
            "check_in_s": self.check_in_s,
        }

    @classmethod
    def from_dict(cls, raw: object) -> CheckInReply:
        r = _obj(raw, "reply")
        commands = r.get("commands", [])
        if not isinstance(commands, list) or len(commands) > MAX_LIST:
            raise _fail(f"'commands' must list at most {MAX_LIST}", "reply.commands")
        assigned = r.get("assigned")
        return cls(
            assigned=None if assigned is None else Assigned.from_dict(assigned, "reply.assigned"),
            commands=tuple(
                Command.from_dict(c, f"reply.commands[{i}]") for i, c in enumerate(commands)
            ),
            check_in_s=_int(r, "check_in_s", "reply", minimum=1),
        )
