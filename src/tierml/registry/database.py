"""The registry database: any SQLAlchemy URL, migrated to the newest schema on open.

SQLite: every write transaction starts with ``BEGIN IMMEDIATE``, so two processes never
both read "the last version is 3" and then race to insert 4; the second waits (up to
``busy_timeout``) for the first to commit. PostgreSQL: the unique constraint on
(model, number) rejects the loser, which retries. Migrations take a lock too (a
PostgreSQL advisory lock, SQLite's write lock) so two first opens do not both create tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from tierml.core.errors import RegistryError, Remedy

HEAD = "r0002"
# Any stable 64-bit number: the advisory lock the migrations of every tierml registry take.
_PG_MIGRATION_LOCK = 7_215_402_113
_SQLITE_BUSY_S = 60.0


@dataclass(frozen=True)
class MigrationChain:
    """One component's Alembic revisions in the shared database: where its scripts live,
    the table that records its revision, and its newest revision."""

    package: str  # holds a ``migrations`` folder
    version_table: str
    head: str


REGISTRY_CHAIN = MigrationChain("tierml.registry", "alembic_version", HEAD)


def open_engine(url: str) -> Engine:
    """An engine for ``url`` with its schema at the newest revision."""
    try:
        engine = _engine(url)
        migrate(engine)
    except SQLAlchemyError as exc:
        raise RegistryError(
            f"Cannot open the registry database {safe_url(url)}: {_first_line(exc)}",
            hint="Check the database URL and that the database server is up.",
            remedy=Remedy.REGISTRY_URL,
            url=safe_url(url),
        ) from exc
    return engine


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        memory = path in ("", ":memory:")
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": _SQLITE_BUSY_S, "check_same_thread": False},
            # One in-memory database shared by every session of this engine.
            poolclass=StaticPool if memory else None,
        )
        _sqlite_transactions(engine, wal=not memory)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True)


def _sqlite_transactions(engine: Engine, *, wal: bool) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot do IMMEDIATE: turn it
    # off and emit BEGIN ourselves (the SQLAlchemy documentation's recipe).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            # Readers do not wait for a writer.
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("registry_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def migrate(engine: Engine, target: str = HEAD, *, chain: MigrationChain = REGISTRY_CHAIN) -> None:
    """Upgrade ``chain``'s tables to ``target`` (its newest revision) with Alembic, under a
    lock; a no-op when already there."""
    with engine.connect() as probe:
        if _revision(probe, chain.version_table) == target:
            return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files(chain.package) / "migrations"))
    with engine.execution_options(registry_write=True).begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        config.attributes["version_table"] = chain.version_table
        command.upgrade(config, target)


def _revision(conn: Connection, version_table: str) -> str | None:
    if not inspect(conn).has_table(version_table):
        return None
    row = conn.execute(text(f"SELECT version_num FROM {version_table}")).first()
    return str(row[0]) if row else None


@contextmanager
def reading(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        except OperationalError as exc:
            raise _db_error(exc) from exc


@contextmanager
def writing(engine: Engine) -> Iterator[Session]:
    """A session whose transaction holds the write lock (SQLite) and commits at the end."""
    with Session(engine.execution_options(registry_write=True), expire_on_commit=False) as s:
        try:
            with s.begin():
                yield s
        except OperationalError as exc:
            raise _db_error(exc) from exc


def _db_error(exc: OperationalError) -> RegistryError:
    return RegistryError(
        f"The registry database failed: {_first_line(exc)}",
        hint="Retry; if it persists, check the database server or file permissions.",
    )


def safe_url(url: str) -> str:
    # Never print a password.
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


def _first_line(exc: BaseException) -> str:
    text_ = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text_[0] if text_ else type(exc).__name__
