"""The control plane's side of MQTT for the agent's tests: signed telemetry from
``tierml/fleet/+/telemetry`` verified against the enrolled device keys, replays refused,
ingested into the control plane's database, acknowledged on the device's acks topic."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import create_engine, text

from tierml.control.telemetry_ingest import ingest
from tierml.core.errors import TiermlError
from tierml.fleet.identity import public_key_from_text
from tierml.fleet.mqtt_link import MqttLink, device_of, topic
from tierml.fleet.protocol import TelemetryUpload
from tierml.fleet.replay import NonceCache
from tierml.fleet.signed_messages import open_sealed


class TelemetryBridge:
    def __init__(self, broker: str, database: Path) -> None:
        self.engine = create_engine(f"sqlite:///{database}")
        self.nonces = NonceCache()
        self.refused: list[str] = []
        self.uploads = 0
        self._lock = threading.Lock()
        self.link = MqttLink(broker, "control-plane", [topic("+", "telemetry")], self._received)

    def __enter__(self) -> TelemetryBridge:
        self.link.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.link.stop()
        self.engine.dispose()

    def command(self, device_id: str, kind: str) -> None:
        assert self.link.publish(topic(device_id, "commands"), {"kind": kind}, wait_s=5)

    def _key(self, device_id: str) -> Ed25519PublicKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT public_key FROM fleet_devices WHERE id = :d"), {"d": device_id}
            ).first()
        return public_key_from_text(row[0]) if row else None

    def _received(self, name: str, body: Any) -> None:
        now = int(time.time())
        try:
            verified, payload = open_sealed(name, body, public_key_for=self._key, now=now)
            if verified.key_id != device_of(name):
                raise AssertionError("signed by another device than its topic names")
            self.nonces.remember(verified.key_id, verified.nonce, created=verified.created, now=now)
            upload = TelemetryUpload.from_dict(payload)
            now_utc = datetime.now(UTC).replace(tzinfo=None)  # as the store keeps time
            done = ingest(self.engine, verified.key_id, upload.batches, now_utc)
        except (TiermlError, AssertionError) as error:
            self.refused.append(str(error))
            return
        with self._lock:
            self.uploads += 1
        self.link.publish(topic(verified.key_id, "acks"), done.to_dict())
