"""The fleet's trust boundary, device side and control-plane side alike.

Device keys and ids (``identity``), HTTP Message Signatures on every device request and
signed MQTT payloads (``signatures``, over ``signature_base``, ``content_digest`` and
``structured_fields``), a nonce replay cache (``replay``), signed artifact manifests and
streaming file checks (``manifests``) and one-time enrolment tokens (``enrollment``). Plain
data in and out, no web framework and no clock: time is always an argument. Needs only the
base install (``cryptography`` is part of it).
"""
