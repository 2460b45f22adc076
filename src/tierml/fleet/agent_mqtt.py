"""The agent's MQTT channel: signed telemetry up, acknowledgements and commands down.

One persistent session under the device's id (QoS 1): telemetry uploads go to
``tierml/fleet/<device>/telemetry`` as signed messages (``signed_messages``); the control
plane answers each on ``…/acks`` with ``{"acked": [seq…], "new": n}`` and may send a
command on ``…/commands`` at any time (``check_in_now``, ``roll_back``), which reaches a
device that was away when it is back. The connection is made and remade in the
background, so a broker that is down at start or restarts later costs only delay.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

from tierml.core.errors import ControlPlaneUnavailableError, InputDataError
from tierml.fleet.agent_http import Signer, TelemetryAck
from tierml.fleet.mqtt_link import MqttLink, topic
from tierml.fleet.protocol import Command, TelemetryUpload
from tierml.fleet.signed_messages import seal

TELEMETRY = "telemetry"
ACKS = "acks"
COMMANDS = "commands"


class AgentMqtt:
    def __init__(
        self,
        address: str,
        signer: Signer,
        *,
        on_acks: Callable[[tuple[int, ...]], object],
        on_command: Callable[[Command], None],
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        device = signer.device_id
        self.signer = signer
        self.on_acks, self.on_command, self.log = on_acks, on_command, log
        self.telemetry_topic = topic(device, TELEMETRY)
        self.acks_topic = topic(device, ACKS)
        self.commands_topic = topic(device, COMMANDS)
        # Commands sent without an id (a bare {"kind": …}) are numbered here, for the logs.
        self._unnumbered = itertools.count(1)
        self.link = MqttLink(
            address,
            device,
            [self.acks_topic, self.commands_topic],
            self._received,
            on_bad_message=lambda name, why: log(f"mqtt: ignored a message on {name}: {why}"),
        )

    def start(self) -> None:
        """Connect in the background (and reconnect whenever the broker comes back)."""
        client = self.link.client
        client.connect_async(self.link.host, self.link.port, keepalive=30)
        client.loop_start()

    def stop(self) -> None:
        self.link.stop()

    @property
    def connected(self) -> bool:
        return self.link.connected.is_set()

    def send_telemetry(self, upload: TelemetryUpload) -> Iterable[int]:
        """Publish ``upload`` signed; nothing is acknowledged now (acks arrive on their
        topic). Unavailable while the broker is not connected: the batches wait."""
        if not self.connected:
            raise ControlPlaneUnavailableError(
                f"Not connected to the MQTT broker at {self.link.host}:{self.link.port}.",
                address=f"{self.link.host}:{self.link.port}",
            )
        message = seal(
            self.telemetry_topic,
            upload.to_dict(),
            private_key=self.signer.identity.private_key,
            key_id=self.signer.device_id,
            created=int(self.signer.clock()),
        )
        self.link.publish(self.telemetry_topic, message)
        return ()

    # -- paho's network thread -----------------------------------------------------------
    def _received(self, name: str, body: Any) -> None:
        try:
            if name == self.acks_topic:
                self.on_acks(TelemetryAck.from_dict(body).acked)
            elif name == self.commands_topic:
                if isinstance(body, dict) and "id" not in body:
                    body = {**body, "id": next(self._unnumbered)}
                self.on_command(Command.from_dict(body))
        except InputDataError as error:
            self.log(f"mqtt: ignored a message on {name}: {error.message}")
