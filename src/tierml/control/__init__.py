"""The control plane's side of the fleet: its tables in the shared database, enrolment,
assignment, the rollout executor and telemetry ingest (the `server` extra)."""
