"""MQTT through a real Mosquitto: messages both ways at QoS 1 on persistent sessions, and
none lost when the broker restarts or the receiver was away."""

from __future__ import annotations

import threading
import time

from tierml.fleet.mqtt_link import MqttLink, device_of, topic


class Inbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, object]] = []
        self.changed = threading.Condition()

    def __call__(self, topic_name: str, body: object) -> None:
        with self.changed:
            self.items.append((topic_name, body))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = 20.0) -> list[tuple[str, object]]:
        deadline = time.monotonic() + timeout_s
        with self.changed:
            while len(self.items) < count and time.monotonic() < deadline:
                self.changed.wait(0.1)
            return list(self.items)


def test_topics_name_the_device() -> None:
    assert topic("d-1", "telemetry") == "tierml/fleet/d-1/telemetry"
    assert device_of("tierml/fleet/d-1/telemetry") == "d-1"
    assert device_of("other/fleet/d-1/telemetry") is None and device_of("tierml/fleet") is None


def test_messages_reach_the_other_side_through_a_broker_restart(mqtt_broker) -> None:
    inbox = Inbox()
    control = MqttLink(mqtt_broker.address, "control-plane", [topic("+", "telemetry")], inbox)
    device = MqttLink(mqtt_broker.address, "d-1", [topic("d-1", "commands")], Inbox())
    control.start()
    device.start()
    try:
        for i in range(20):
            assert device.publish(topic("d-1", "telemetry"), {"seq": i + 1}, wait_s=5)
        assert len(inbox.wait_for(20)) == 20
        mqtt_broker.restart()
        deadline = time.monotonic() + 20  # both clients noticed and reconnected
        while min(device.connects, control.connects) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert device.connects >= 2 and control.connects >= 2
        for i in range(20, 40):
            device.publish(topic("d-1", "telemetry"), {"seq": i + 1}, wait_s=10)
        seqs = {body["seq"] for _, body in inbox.wait_for(40)}
        assert seqs == set(range(1, 41))
    finally:
        device.stop()
        control.stop()


def test_a_command_sent_while_the_device_is_away_arrives_when_it_comes_back(mqtt_broker) -> None:
    commands = Inbox()
    device = MqttLink(mqtt_broker.address, "d-2", [topic("d-2", "commands")], commands).start()
    device.stop()  # away: its persistent session keeps QoS 1 messages for it
    control = MqttLink(mqtt_broker.address, "control-plane-2", [], Inbox()).start()
    try:
        assert control.publish(topic("d-2", "commands"), {"kind": "check_in_now"}, wait_s=5)
        back = MqttLink(mqtt_broker.address, "d-2", [topic("d-2", "commands")], commands).start()
        try:
            assert commands.wait_for(1) == [("tierml/fleet/d-2/commands", {"kind": "check_in_now"})]
        finally:
            back.stop()
    finally:
        control.stop()
