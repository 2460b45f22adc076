"""The model registry: versions, per-device variants, lineage, regeneration, selection.

``Registry.open(workspace)``: metadata in the workspace's SQLAlchemy database (SQLite
under its home by default, any URL such as PostgreSQL otherwise); artifacts are
content-addressed files under its home.
"""

from tierml.registry.store import Registry

__all__ = ["Registry"]
