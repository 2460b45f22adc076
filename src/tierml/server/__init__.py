"""The control plane as an HTTP service (``tierml serve``; the ``server`` extra): FastAPI on
uvicorn, a thin client of :mod:`tierml.api.fleet` like the command line.

Devices enrol with a one-time token and sign every later request (RFC 9421); administrators
present a bearer token. Every refusal is a 4xx with a coded JSON error, every answer is
counted for Prometheus, and a background loop runs the rollout executor. Any number of
processes can serve one PostgreSQL database: nonces, telemetry keys and the executor's row
locks live there, not in a process.
"""
