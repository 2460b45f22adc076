"""A connection to an MQTT broker (paho-mqtt) for devices and the control plane.

Devices that the control plane cannot reach directly (behind NAT, asleep between check-ins)
keep one connection to a broker: telemetry goes up on ``tierml/fleet/<device>/telemetry``,
acknowledgements and commands ("check in now", "roll back") come down on ``…/acks`` and
``…/commands``. Everything is QoS 1 on a persistent session (a fixed client id,
``clean_session`` off), so a message published while the other side or the broker was away
is delivered when they are back: at least once, which the receivers make idempotent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tierml.core.errors import TierUnavailableError

TOPIC_ROOT = "tierml/fleet"
QOS = 1
# A message's handler: its topic and its JSON body, already decoded.
Handler = Callable[[str, Any], None]


def topic(device_id: str, kind: str) -> str:
    """``tierml/fleet/<device>/<kind>``: telemetry, acks or commands."""
    return f"{TOPIC_ROOT}/{device_id}/{kind}"


def device_of(topic_name: str) -> str | None:
    parts = topic_name.split("/")
    return parts[2] if len(parts) == 4 and f"{parts[0]}/{parts[1]}" == TOPIC_ROOT else None


class MqttLink:
    """One client: connects (and reconnects) in a background thread, subscribes again on
    every connect, hands each message's decoded JSON to ``handler``."""

    def __init__(
        self,
        address: str,
        client_id: str,
        subscriptions: Iterable[str],
        handler: Handler,
        *,
        on_bad_message: Callable[[str, str], None] | None = None,
    ) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host or "127.0.0.1", int(port or 1883)
        self.subscriptions = tuple(subscriptions)
        self.handler = handler
        self.on_bad_message = on_bad_message
        self.connected = threading.Event()
        self.connects = 0  # connections made: more than one means it reconnected
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self, timeout_s: float = 10.0) -> MqttLink:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout_s):
            self.stop()
            raise TierUnavailableError(
                "mqtt",
                f"No MQTT broker answered at {self.host}:{self.port} within {timeout_s:g} s.",
                hint="Start the broker, or check its address.",
                address=f"{self.host}:{self.port}",
            )
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic_name: str, body: Any, *, wait_s: float | None = None) -> bool:
        """Queue ``body`` (JSON) for ``topic_name`` at QoS 1. With ``wait_s``, wait until the
        broker acknowledged it; True when it did (or when not waiting)."""
        info = self.client.publish(topic_name, json.dumps(body, separators=(",", ":")), qos=QOS)
        if wait_s is None:
            return True
        try:
            info.wait_for_publish(wait_s)
        except (RuntimeError, ValueError):  # not connected now: paho resends it later
            return False
        return info.is_published()

    # -- paho callbacks (its network thread) -----------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        for name in self.subscriptions:
            client.subscribe(name, qos=QOS)
        self.connects += 1
        self.connected.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            body = json.loads(message.payload)
        except (ValueError, UnicodeDecodeError):
            if self.on_bad_message is not None:
                self.on_bad_message(message.topic, "not JSON")
            return
        self.handler(message.topic, body)
