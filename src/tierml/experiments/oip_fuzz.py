"""Fuzz running tier servers with mutated OIP v2 requests and classify every answer.

Each case (``oip_mutations``) goes to its tier's port on 127.0.0.1 — through gRPC as
serialised bytes (so broken messages and unknown methods reach the server), or as raw
bytes over TCP. An answer is one of

- ``ok``: the call succeeded;
- ``coded``: a gRPC status with ``tierml-code`` trailing metadata (refused with a reason);
- ``limit``: RESOURCE_EXHAUSTED from gRPC itself, the documented 64 MB message limit;
- ``dropped``: raw bytes the server closed the connection on (or ignored);
- ``untyped``: anything else — INTERNAL or UNKNOWN without a code, a timeout, a refused
  connection, a dead server.

After the cases, every seed's valid request must get the same answer it got before them,
and every server process must still be alive.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from tritonclient.grpc import service_pb2 as pb

from tierml.experiments.oip_mutations import INFER, RAW_TCP, Case, Seed, make_case
from tierml.runtime.transport import CODE_KEY, MAX_MESSAGE_BYTES
from tierml.runtime.wire import read_tensors

CLASSES = ("ok", "coded", "limit", "dropped", "untyped")
EXAMPLES = 20  # untyped answers kept in the report


@dataclass(frozen=True)
class Answer:
    cls: str
    status: str  # gRPC status name, or what the TCP connection did
    code: str = ""  # tierml-code
    message: str = ""
    response: bytes | None = None


def classify(status: grpc.StatusCode, metadata: Mapping[str, str], details: str) -> str:
    if status is grpc.StatusCode.OK:
        return "ok"
    if metadata.get(CODE_KEY):
        return "coded"
    # Only the message size limit: trailers dropped for their size are RESOURCE_EXHAUSTED
    # too, and they lose the code the tier sent.
    if status is grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in details:
        return "limit"
    return "untyped"


class TierPorts:
    """The tier servers of a running deployment, called with bytes (no serialiser)."""

    def __init__(self, addresses: Mapping[str, str], *, timeout_s: float = 10.0) -> None:
        self.addresses = dict(addresses)
        self.timeout_s = timeout_s
        # The client may send past the servers' limit: the server's refusal is what counts.
        options = [
            ("grpc.max_send_message_length", 2 * MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ]
        self._channels = {
            t: grpc.insecure_channel(a, options=options) for t, a in addresses.items()
        }

    def send(self, tier: str, method: str, payload: bytes) -> Answer:
        if method == RAW_TCP:
            return self._raw(tier, payload)
        call = self._channels[tier].unary_unary(method)
        try:
            response = call(payload, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            status = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            meta = dict(exc.trailing_metadata() or ()) if isinstance(exc, grpc.Call) else {}
            details = (exc.details() if isinstance(exc, grpc.Call) else str(exc)) or ""
            return Answer(
                classify(status, meta, details),
                status.name,
                str(meta.get(CODE_KEY, "")),
                details[:200],
            )
        return Answer("ok", "OK", response=response)

    def _raw(self, tier: str, payload: bytes) -> Answer:
        host, port = self.addresses[tier].rsplit(":", 1)
        try:
            s = socket.create_connection((host, int(port)), timeout=2.0)
        except OSError as exc:  # refused: nothing listens
            return Answer("untyped", f"connect failed: {exc}")
        with s:
            try:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(0.5)
                got = 0
                while chunk := s.recv(65536):
                    got += len(chunk)
                    if got > 1 << 20:
                        break
            except TimeoutError:
                return Answer("dropped", "kept open")
            except OSError:  # reset, or closed while the garbage was still being sent
                return Answer("dropped", "reset")
        return Answer("dropped", "closed")

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()


@dataclass
class FuzzReport:
    run_seed: int
    cases: int = 0
    seconds: float = 0.0
    classes: Counter[str] = field(default_factory=Counter)
    kinds: dict[str, Counter[str]] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    untyped: list[dict[str, Any]] = field(default_factory=list)
    answered_after: bool = False  # every seed's valid request answered as before
    alive_after: bool = False  # every server process still running
    stopped: str = ""  # why the run ended early, if it did

    def add(self, case: Case, answer: Answer) -> None:
        self.cases += 1
        self.classes[answer.cls] += 1
        self.kinds.setdefault(case.kind, Counter())[answer.cls] += 1
        self.statuses[answer.status if not answer.code else f"{answer.status}/{answer.code}"] += 1
        if answer.cls == "untyped" and len(self.untyped) < EXAMPLES:
            self.untyped.append(
                {
                    "case": case.index,
                    "kind": case.kind,
                    "detail": case.detail,
                    "tier": case.tier,
                    "status": answer.status,
                    "message": answer.message,
                }
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_seed": self.run_seed,
            "cases": self.cases,
            "seconds": round(self.seconds, 2),
            "classes": {c: self.classes.get(c, 0) for c in CLASSES},
            "kinds": {k: dict(v) for k, v in sorted(self.kinds.items())},
            "statuses": dict(self.statuses.most_common()),
            "untyped_examples": self.untyped,
            "answered_after": self.answered_after,
            "alive_after": self.alive_after,
            "stopped": self.stopped,
        }


def run_fuzz(
    ports: TierPorts,
    seeds: Sequence[Seed],
    *,
    count: int,
    seconds: float,
    run_seed: int,
    alive: Callable[[], bool],
    progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:
    """``count`` cases (at most ``seconds`` of them), then the valid requests again."""
    report = FuzzReport(run_seed)
    before = [_outputs(ports, s) for s in seeds]
    if any(b is None for b in before):
        raise RuntimeError("a seed request is not answered before fuzzing: fix the seeds")
    start = time.monotonic()
    for i in range(count):
        if time.monotonic() - start > seconds:
            report.stopped = f"time cap of {seconds:g} s"
            break
        case = make_case(i, run_seed, list(seeds))
        answer = ports.send(case.tier, case.method, case.payload)
        report.add(case, answer)
        if answer.cls == "untyped" and not alive():
            report.stopped = f"a server died at case {i} ({case.kind}: {case.detail})"
            break
        if progress is not None and (i + 1) % 500 == 0:
            progress(report)
    report.seconds = time.monotonic() - start
    after = [_outputs(ports, s) for s in seeds]
    report.answered_after = all(
        a is not None and b is not None and _same(a, b) for a, b in zip(after, before, strict=True)
    )
    report.alive_after = alive()
    return report


def _outputs(ports: TierPorts, seed: Seed) -> dict[str, np.ndarray[Any, Any]] | None:
    answer = ports.send(seed.tier, INFER, seed.request.SerializeToString())
    if answer.response is None:
        return None
    response = pb.ModelInferResponse.FromString(answer.response)
    return read_tensors(response.outputs, response.raw_output_contents)[0]


def _same(a: Mapping[str, np.ndarray[Any, Any]], b: Mapping[str, np.ndarray[Any, Any]]) -> bool:
    return a.keys() == b.keys() and all(
        np.allclose(a[k], b[k], rtol=1e-5, atol=1e-6, equal_nan=True) for k in a
    )
