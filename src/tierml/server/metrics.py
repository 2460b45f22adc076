"""The control plane's Prometheus metrics, in a registry of the app's own (several apps in
one process, as in tests, do not collide)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# A check-in reads and writes a few rows and signs a manifest: milliseconds, more under load.
CHECK_IN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass
class ServerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "tierml_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.check_ins = Counter("tierml_check_ins", "Device check-ins answered.", registry=r)
        self.enrolments = Counter("tierml_enrolments", "Devices enrolled.", registry=r)
        self.auth_failures = Counter(
            "tierml_auth_failures",
            "Requests refused by authentication (signatures, tokens), by reason.",
            ["reason"],
            registry=r,
        )
        self.telemetry_batches = Counter(
            "tierml_telemetry_batches",
            "Telemetry batches received: new (stored now) or duplicate (stored before).",
            ["outcome"],
            registry=r,
        )
        self.check_in_seconds = Histogram(
            "tierml_check_in_seconds",
            "Time to answer a check-in, authentication included.",
            buckets=CHECK_IN_BUCKETS,
            registry=r,
        )
        self.devices_enrolled = Gauge(
            "tierml_devices_enrolled",
            "Devices enrolled in the control plane's database (every process's), as of the "
            "last executor tick or enrolment.",
            registry=r,
        )
        self.ticks = Counter(
            "tierml_executor_ticks",
            "Background executor runs (rollouts stepped, old nonces forgotten), by outcome.",
            ["outcome"],
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
