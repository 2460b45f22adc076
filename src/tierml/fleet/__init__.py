"""The fleet: what a device agent and the control plane share, and the trust between them.

The trust boundary: device keys and ids (``identity``), HTTP Message Signatures on every
device request and signed MQTT payloads (``signatures``, over ``signature_base``,
``content_digest`` and ``structured_fields``), a nonce replay cache (``replay``), signed
artifact manifests with streaming file checks (``manifests``) and one-time enrolment tokens
(``enrollment``): plain data in and out, no web framework and no clock (time is always an
argument). Everything here imports with the base install alone (``cryptography`` is part
of it), since a device runs it.
"""
