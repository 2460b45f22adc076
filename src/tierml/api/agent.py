"""The device agent: what `tierml agent` runs on a device, with the base install alone.

``run_agent`` enrols the device once (a one-time token and a key pair made on the device),
then checks in every interval with its profile file as it is now, keeps the model the
control plane assigns serving on a local OIP v2 endpoint (127.0.0.1), and reports
telemetry — surviving a control plane that is down and being killed at any moment
(docs/fleet.md, "Agent"). ``enroll_device`` does the enrolment alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.core.errors import InputDataError
from tierml.fleet.agent import AgentConfig, DeviceAgent
from tierml.fleet.telemetry_queue import DropPolicy

__all__ = ["AgentEnrolment", "AgentOptions", "AgentReport", "enroll_device", "run_agent"]


@dataclass(frozen=True)
class AgentOptions:
    control_plane: str  # http(s)://HOST:PORT of the control plane
    home: Path  # the agent's state: key, enrolment, models, telemetry queue
    profile: Path  # the device profile file, read again at every check-in
    token: str | None = None  # the one-time enrolment token; needed on the first start only
    serve_port: int = 0  # the local endpoint's port on 127.0.0.1 (0: any free one)
    mqtt: str | None = None  # HOST:PORT: telemetry and commands through an MQTT broker
    traffic_rps: float | None = None  # the built-in application's rate (needs ``inputs``)
    inputs: Path | None = None  # the .npz the built-in application sends
    queue_max: int = 10_000  # telemetry batches kept while the control plane is away
    drop_policy: str = DropPolicy.DROP_OLDEST.value  # or "refuse-new", when the queue is full
    duration_s: float | None = None  # stop after this long (None: until stopped)
    check_in_s: float | None = None  # None: as the control plane says
    telemetry_s: float = 60.0  # one telemetry batch per this period
    threads: int = 1  # ONNX Runtime threads of the served model

    def config(self) -> AgentConfig:
        """The agent's configuration; InputDataError naming an option out of range."""
        problems = []
        if self.traffic_rps is not None and self.inputs is None:
            problems.append("a request rate needs the input arrays to send")
        if self.traffic_rps is not None and not self.traffic_rps > 0:
            problems.append(f"the request rate must be > 0, got {self.traffic_rps:g}")
        if self.queue_max < 1:
            problems.append(f"the queue must hold at least 1 batch, got {self.queue_max}")
        if self.drop_policy not in {p.value for p in DropPolicy}:
            known = ", ".join(p.value for p in DropPolicy)
            problems.append(f"drop policy {self.drop_policy!r} is not one of {known}")
        for name in ("duration_s", "check_in_s", "telemetry_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name} must be > 0, got {value:g}")
        if self.threads < 1:
            problems.append(f"threads must be at least 1, got {self.threads}")
        if problems:
            raise InputDataError(
                f"Agent options: {'; '.join(problems)}.",
                hint="Fix the options the message names.",
            )
        return AgentConfig(
            control_plane=self.control_plane,
            home=self.home,
            profile=self.profile,
            token=self.token,
            serve_port=self.serve_port,
            mqtt=self.mqtt,
            traffic_rps=self.traffic_rps,
            inputs=self.inputs,
            queue_max=self.queue_max,
            drop_policy=DropPolicy(self.drop_policy),
            check_in_s=self.check_in_s,
            telemetry_s=self.telemetry_s,
            threads=self.threads,
        )


@dataclass(frozen=True)
class AgentReport:
    """What the agent did, as its status file says it (HOME/agent.json) when it stopped."""

    status: dict[str, Any]

    @property
    def device_id(self) -> str | None:
        value = self.status.get("device_id")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.status)


@dataclass(frozen=True)
class AgentEnrolment:
    device_id: str
    model: str
    control_plane_key: str
    check_in_s: int
    enrolled_now: bool  # False: the home was enrolled before; nothing was sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "model": self.model,
            "control_plane_key": self.control_plane_key,
            "check_in_s": self.check_in_s,
            "enrolled_now": self.enrolled_now,
        }


def run_agent(
    options: AgentOptions,
    *,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
) -> AgentReport:
    """Run the agent until ``stop`` is set or ``options.duration_s`` has passed; ``log``
    receives one line per event (enrolled, downloading, serving, a control plane down …)."""
    agent = DeviceAgent(options.config(), log=log)
    agent.run(stop or threading.Event(), options.duration_s)
    return AgentReport(agent.status())


def enroll_device(options: AgentOptions) -> AgentEnrolment:
    """Enrol the device (generating its key in the home on first use), or return the
    enrolment it already has."""
    agent = DeviceAgent(options.config())
    try:
        before = agent.enrolled
        enrolled = agent.enroll()
    finally:
        agent.close()
    return AgentEnrolment(
        enrolled.device_id,
        enrolled.model,
        enrolled.control_plane_key,
        enrolled.check_in_s,
        enrolled_now=before is None,
    )
