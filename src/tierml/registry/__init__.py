"""The model registry: versions, per-device variants, lineage, regeneration, selection.

Metadata lives in a SQLAlchemy database (SQLite under ``TIERML_HOME`` by default, any URL
such as PostgreSQL otherwise); artifacts are content-addressed files beside it.
"""

from tierml.registry.store import Registry

__all__ = ["Registry"]
