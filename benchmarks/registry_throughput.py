"""Registry metadata throughput on SQLite (file) and PostgreSQL: reads and writes per second.

One process, one connection pool, no artifacts touched: this is the database half of the
registry. Setup: a model with 5 versions × 5 variants (rows inserted directly, so model
files need not be built). Then, each for ``--n`` operations:

- write: declare a recipe (one transaction: look up the model, check the name, insert);
- write: register a version's row (BEGIN IMMEDIATE on SQLite; max + 1 and insert);
- read: ``model list`` (one aggregate per model);
- read: ``lineage`` of the model (5 versions, 25 variants, as JSON).

PostgreSQL: ``--pg URL`` or ``TIERML_TEST_POSTGRES_URL``; ``./dev postgres`` starts a
private server and prints its URL.

    .venv/bin/python benchmarks/registry_throughput.py [--n 300] [--pg URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from tierml.api.workspace import open_workspace
from tierml.registry import Registry
from tierml.registry.building import add_recipe
from tierml.registry.lineage import lineage_document
from tierml.registry.schema import Base, ModelRow, RecipeRow, VariantRow, VersionRow
from tierml.registry.store import now
from tierml.registry.versions import list_models


def seed(registry: Registry) -> None:
    def fill(s: Session) -> None:
        m = ModelRow(name="bench", created_at=now())
        s.add(m)
        s.flush()
        recipes = [
            RecipeRow(model_id=m.id, name=f"r{i}", transform="fp16", params={}, created_at=now())
            for i in range(5)
        ]
        s.add_all(recipes)
        for n in range(1, 6):
            v = VersionRow(model_id=m.id, number=n, sha256="0" * 64, card={}, io_schema={},
                           metrics={"size_bytes": 1}, created_at=now())  # fmt: skip
            s.add(v)
            s.flush()
            for r in recipes:
                s.add(
                    VariantRow(version_id=v.id, recipe_id=r.id, sha256="1" * 64,
                               metrics={"size_bytes": 1, "latency_ms": {"x": 1.0}},
                               status="published", reason="", build_s=0.0, created_at=now())
                )  # fmt: skip

    registry.write(fill)


def register_row(registry: Registry, i: int) -> None:
    """The database part of `tierml model add`: next number, insert, under the write lock."""

    def insert(s: Session) -> None:
        m = s.scalars(select(ModelRow).where(ModelRow.name == "bench")).one()
        number = 1 + (
            s.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == m.id)) or 0
        )
        s.add(VersionRow(model_id=m.id, number=number, sha256=f"{i:064d}", card={},
                         io_schema={}, metrics={}, created_at=now()))  # fmt: skip

    registry.write(insert)


def rate(n: int, op: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for i in range(n):
        op(i)
    return n / (time.perf_counter() - start)


def bench(url: str, home: Path, n: int) -> dict[str, float]:
    registry = Registry.open(open_workspace(home, registry_url=url))
    seed(registry)
    # Reads first, on the seeded 5 × 5 model; the writes then add n recipes and n versions.
    out = {
        "model list reads/s": rate(n, lambda i: list_models(registry)),
        "lineage reads/s": rate(n, lambda i: lineage_document(registry, "bench")),
        "recipe writes/s": rate(n, lambda i: add_recipe(registry, "bench", f"w{i}", "fp16", {})),
        "version writes/s": rate(n, lambda i: register_row(registry, i)),
    }
    registry.close()
    return out


def _empty(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--pg", default=os.environ.get("TIERML_TEST_POSTGRES_URL"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tierml-bench-") as tmp:
        home = Path(tmp)
        results["sqlite-file"] = bench(f"sqlite:///{home / 'r.db'}", home, args.n)
        if args.pg:
            _empty(args.pg)
            results["postgresql"] = bench(args.pg, home, args.n)
            _empty(args.pg)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    keys = list(next(iter(results.values())))
    print("| backend | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for backend, r in results.items():
        print(f"| {backend} | " + " | ".join(f"{r[k]:.0f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
