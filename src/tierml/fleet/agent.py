"""The device agent: enrol once, check in, keep the assigned model serving, report telemetry.

One loop in the calling thread decides what happens when; serving (the local endpoint's
gRPC threads), MQTT (paho's thread) and the built-in application run beside it. Per turn:

- a check-in when due (every ``check_in_s``, at once on a ``check_in_now`` command): the
  device profile file as it is now, the model serving, failed starts and a rollback not yet
  reported; the reply's assignment is downloaded, checked and started (``agent_models``);
- every telemetry period, the window's batch into the durable queue, then an upload of what
  is pending (over HTTP, or MQTT with acknowledgements on their own topic);
- a control plane that does not answer is tried again with exponential backoff (up to the
  check-in interval, with jitter so a fleet does not return at once); meanwhile the device
  goes on serving and buffering.

Stopping closes the period into the queue and tries one last upload; whatever is not
acknowledged stays queued for the next start.
"""

from __future__ import annotations

import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.catalog.loading import load_catalog
from tierml.core.errors import (
    AuthFailure,
    ControlPlaneRefusalError,
    ControlPlaneUnavailableError,
    EnrollmentError,
    Remedy,
    TiermlError,
)
from tierml.fleet.agent_home import AgentHome
from tierml.fleet.agent_http import ControlPlaneHttp, Enrolled, Signer
from tierml.fleet.agent_models import DeviceModels
from tierml.fleet.agent_mqtt import AgentMqtt
from tierml.fleet.agent_telemetry import TelemetryRecorder
from tierml.fleet.agent_traffic import TrafficGenerator, load_inputs
from tierml.fleet.device_profile import DeviceProfile, read_device_profile
from tierml.fleet.local_serving import LocalEndpoint
from tierml.fleet.protocol import CheckIn, CheckInReply, Command, EnrollRequest
from tierml.fleet.telemetry_queue import DropPolicy, TelemetryQueue

BACKOFF_FIRST_S = 1.0
MQTT_RESEND_S = 30.0  # an upload over MQTT not acknowledged by then is sent again
STATUS_EVERY_S = 1.0
TICK_S = 1.0  # the longest the loop sleeps: stopping and deadlines are noticed this fast


@dataclass(frozen=True)
class AgentConfig:
    control_plane: str  # http(s)://host:port of the control plane
    home: Path  # the agent's own state (agent_home)
    profile: Path  # the device profile file, re-read at every check-in
    token: str | None = None  # the one-time enrolment token (first start only)
    serve_port: int = 0  # the local endpoint's port on 127.0.0.1 (0: any free one)
    mqtt: str | None = None  # HOST:PORT of an MQTT broker: telemetry and commands through it
    traffic_rps: float | None = None  # the built-in application's request rate
    inputs: Path | None = None  # … and the arrays it sends
    queue_max: int = 10_000  # telemetry batches kept while offline
    drop_policy: DropPolicy = DropPolicy.DROP_OLDEST
    check_in_s: float | None = None  # None: the interval the control plane gives
    telemetry_s: float = 60.0  # the telemetry period
    threads: int = 1  # ONNX Runtime threads of the served model


@dataclass
class LoopCounts:
    check_ins: int = 0
    check_in_failures: int = 0
    uploads: int = 0
    upload_failures: int = 0
    commands: int = 0
    last_error: str | None = None


class DeviceAgent:
    def __init__(self, config: AgentConfig, *, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.say = log or (lambda _line: None)
        self.home = AgentHome(config.home)
        self.profile: DeviceProfile = read_device_profile(config.profile)  # refused at once
        self.arrays = load_inputs(config.inputs) if config.inputs else None
        self.identity = self.home.identity()
        self.http = ControlPlaneHttp(config.control_plane)
        self.enrolled: Enrolled | None = self.home.enrolment()
        self.loop = LoopCounts()
        self.commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.wake = threading.Event()
        self.recorder = TelemetryRecorder(
            TelemetryQueue(
                self.home.queue_path, max_batches=config.queue_max, policy=config.drop_policy
            ),
            power_active_w=self._power(self.profile),
            resend_after_s=MQTT_RESEND_S if config.mqtt else 0.0,
        )
        self.endpoint: LocalEndpoint | None = None
        self.models: DeviceModels | None = None
        self.mqtt: AgentMqtt | None = None
        self.traffic: TrafficGenerator | None = None
        self._failures = 0  # consecutive: the backoff's exponent
        self._started = time.monotonic()
        self._final_status: dict[str, Any] | None = None  # once closed

    # -- enrolment -----------------------------------------------------------------------
    def enroll(self) -> Enrolled:
        """The device's enrolment: the one remembered, or a new one with the token."""
        if self.enrolled is not None:
            return self.enrolled
        if not self.config.token:
            raise EnrollmentError(
                AuthFailure.MISSING,
                "This device is not enrolled yet and no enrolment token was given.",
                hint="Give the one-time enrolment token the control plane's operator issued.",
                remedy=Remedy.ENROLL_TOKEN,
            )
        request = EnrollRequest(
            self.config.token,
            self.identity.public_key_text,
            self.profile.name,
            self.profile.reported(),
        )
        try:
            enrolled = self.http.enroll(request)
        except ControlPlaneRefusalError as error:
            if error.details.get("remote_code") != EnrollmentError.code:
                raise
            reason = str(error.details.get("remote_reason", ""))
            known = {failure.value for failure in AuthFailure}
            raise EnrollmentError(
                AuthFailure(reason) if reason in known else AuthFailure.TOKEN_UNKNOWN,
                str(error.details.get("remote_message") or error.message),
                remedy=Remedy.ENROLL_TOKEN,
            ) from None
        if enrolled.device_id != self.identity.device_id:
            raise ControlPlaneUnavailableError(
                f"The control plane enrolled this device as {enrolled.device_id}; its key makes "
                f"it {self.identity.device_id}.",
            )
        self.home.save_enrolment(enrolled)
        self.enrolled = enrolled
        self.say(f"enrolled as {enrolled.device_id} for model {enrolled.model}")
        return enrolled

    @property
    def signer(self) -> Signer:
        assert self.enrolled is not None
        return Signer(self.identity, self.enrolled.device_id)

    # -- running -------------------------------------------------------------------------
    def run(self, stop: threading.Event, duration_s: float | None = None) -> None:
        """Until ``stop`` is set or ``duration_s`` has passed."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while self.enrolled is None:  # enrolment needs the control plane: wait for it
                try:
                    self.enroll()
                except ControlPlaneUnavailableError as error:
                    if self._wait(stop, deadline, self._backoff(error)):
                        return
            self._start_serving()
            self._loop(stop, deadline)
        finally:
            self.close()

    def _start_serving(self) -> None:
        assert self.enrolled is not None
        self.endpoint = LocalEndpoint(
            self.enrolled.model,
            port=self.config.serve_port,
            threads=self.config.threads,
            observe=self.recorder.record,
        )
        self.endpoint.start()
        self.say(f"local endpoint: OIP v2 gRPC on {self.endpoint.address}")
        self.models = DeviceModels(
            self.home,
            self.endpoint,
            self.http,
            self.signer,
            self.enrolled.control_plane_key,
            log=self.say,
        )
        self.models.serve_active()
        if self.config.mqtt:
            self.mqtt = AgentMqtt(
                self.config.mqtt,
                self.signer,
                on_acks=self.recorder.acknowledge,
                on_command=self._command_arrived,
                log=self.say,
            )
            self.mqtt.start()

    def _loop(self, stop: threading.Event, deadline: float | None) -> None:
        assert self.enrolled is not None
        assert self.models is not None
        now = time.monotonic()
        next_check_in, next_period, next_upload, next_status = now, now, now, now
        next_period += self.config.telemetry_s
        while not stop.is_set() and (deadline is None or now < deadline):
            before = self.models.serving
            next_check_in = self._take_commands(next_check_in, now)
            if now >= next_check_in:
                next_check_in = now + self._check_in()
            if self.models.serving != before:  # a batch describes one model: close it
                self.recorder.close_period(before)
            if now >= next_period:
                self._close_period()
                next_period = now + self.config.telemetry_s
                next_upload = min(next_upload, now)
            if now >= next_upload:
                next_upload = now + self._upload()
            self._start_traffic_once_serving()
            if now >= next_status:
                self._write_status()
                next_status = now + STATUS_EVERY_S
            soonest = min(next_check_in, next_period, next_upload, now + TICK_S)
            if deadline is not None:
                soonest = min(soonest, deadline)
            self.wake.wait(max(0.0, soonest - time.monotonic()))
            self.wake.clear()
            now = time.monotonic()

    def _check_in(self) -> float:
        """One check-in and what its reply asks; the seconds until the next one."""
        assert self.models is not None and self.enrolled is not None
        self._read_profile()
        failures, rolled_back = self.models.report()
        message = CheckIn(self.profile.reported(), self.models.serving, failures, rolled_back)
        try:
            reply = self.http.check_in(self.signer, message)
        except ControlPlaneUnavailableError as error:
            self.loop.check_in_failures += 1
            return self._backoff(error)
        except ControlPlaneRefusalError as error:  # not this device's to fix: log, go on
            self.loop.check_in_failures += 1
            self._note(error)
            return self._interval(None)
        self._failures = 0
        self.loop.check_ins += 1
        self.models.reported(rolled_back)
        for command in reply.commands:
            self._command_arrived(command)
        return self._apply(reply)

    def _apply(self, reply: CheckInReply) -> float:
        assert self.models is not None
        if reply.assigned is not None:
            try:
                self.models.apply(reply.assigned)
            except ControlPlaneUnavailableError as error:
                return self._backoff(error)
            except TiermlError as error:  # a refused download, a failed check: next time
                self._note(error)
        return self._interval(reply)

    def _take_commands(self, next_check_in: float, now: float) -> float:
        assert self.models is not None
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return next_check_in
            self.loop.commands += 1
            if command.kind == "check_in_now":
                next_check_in = now
            elif command.kind == "roll_back":
                self.models.roll_back()
                next_check_in = now  # say so, and hear what to run now
            else:
                self.say(f"ignored command {command.id}: unknown kind {command.kind!r}")

    def _command_arrived(self, command: Command) -> None:
        self.commands.put(command)
        self.wake.set()

    def _close_period(self) -> None:
        serving = self.models.serving if self.models else None
        self.recorder.close_period(serving)

    def _upload(self) -> float:
        """Upload what is pending; the seconds until the next try."""
        send = self.mqtt.send_telemetry if self.mqtt else self._send_http
        try:
            self.recorder.upload(send)
        except ControlPlaneUnavailableError as error:
            self.loop.upload_failures += 1
            return self._backoff(error)
        except ControlPlaneRefusalError as error:
            self.loop.upload_failures += 1
            self._note(error)
            return self._interval(None)
        self.loop.uploads += 1
        return self.config.telemetry_s

    def _send_http(self, upload: Any) -> tuple[int, ...]:
        return self.http.upload(self.signer, upload).acked

    def _start_traffic_once_serving(self) -> None:
        ready = self.endpoint is not None and self.endpoint.running is not None
        if self.traffic is None and self.arrays is not None and ready:
            assert self.endpoint is not None and self.enrolled is not None
            rps = self.config.traffic_rps or 1.0
            self.traffic = TrafficGenerator(
                self.endpoint.address, self.enrolled.model, self.arrays, rps
            )
            self.traffic.start()
            self.say(f"built-in application: {rps:g} requests/s to {self.endpoint.address}")

    # -- timing --------------------------------------------------------------------------
    def _interval(self, reply: CheckInReply | None) -> float:
        if self.config.check_in_s is not None:
            return self.config.check_in_s
        if reply is not None:
            return float(reply.check_in_s)
        return float(self.enrolled.check_in_s if self.enrolled else 60)

    def _backoff(self, error: TiermlError) -> float:
        """Exponential from one second up to the check-in interval, ±20 % jitter."""
        self._note(error)
        delay = min(BACKOFF_FIRST_S * 2.0**self._failures, self._interval(None))
        self._failures = min(self._failures + 1, 30)
        return delay * random.uniform(0.8, 1.2)

    def _wait(self, stop: threading.Event, deadline: float | None, delay: float) -> bool:
        """Sleep ``delay`` (or until stopped or past the deadline); True when it is over."""
        if deadline is not None:
            delay = min(delay, max(0.0, deadline - time.monotonic()))
        stopped = stop.wait(delay)
        return stopped or (deadline is not None and time.monotonic() >= deadline)

    def _note(self, error: TiermlError) -> None:
        line = error.one_line()
        if line != self.loop.last_error:
            self.say(line)
        self.loop.last_error = line

    # -- the profile and its catalog figures ---------------------------------------------
    def _read_profile(self) -> None:
        try:
            profile = read_device_profile(self.config.profile)
        except TiermlError as error:  # half-written or mistyped: report the last good one
            self._note(error)
            return
        if profile.catalog_profile != self.profile.catalog_profile:
            self.recorder.set_power(self._power(profile))
        self.profile = profile

    def _power(self, profile: DeviceProfile) -> float | None:
        name = profile.catalog_profile
        if name is None:
            return None
        try:
            power = load_catalog(home=self.config.home).tier(name).power_active_w
        except TiermlError as error:
            self._note(error)
            return None
        return power

    # -- status and shutting down --------------------------------------------------------
    def status(self) -> dict[str, Any]:
        if self._final_status is not None:
            return dict(self._final_status)
        serving = self.models.serving if self.models else None
        return {
            "device_id": self.enrolled.device_id if self.enrolled else None,
            "model": self.enrolled.model if self.enrolled else None,
            "endpoint": self.endpoint.address if self.endpoint else None,
            "serving": serving.to_dict() if serving else None,
            "profile": self.profile.reported(),
            "loop": dict(vars(self.loop)),
            "models": self.models.counts.to_dict() if self.models else {},
            "telemetry": self.recorder.counts().to_dict(),
            "traffic": self.traffic.counts().to_dict() if self.traffic else None,
            "uptime_s": round(time.monotonic() - self._started, 3),
        }

    def _write_status(self) -> None:
        self.home.write_status({**self.status(), "pid": os.getpid()})

    def close(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        if self.models is not None:
            self._close_period()
            if self._failures == 0:  # the control plane answered last: one last upload
                try:
                    self.recorder.upload(self.mqtt.send_telemetry if self.mqtt else self._send_http)
                except TiermlError as error:
                    self._note(error)
            self._write_status()
        if self.mqtt is not None:
            self.mqtt.stop()
        final = self.status()  # what served until now, before the endpoint lets it go
        if self.endpoint is not None:
            self.endpoint.stop()
        self.recorder.close()
        self._final_status = final
