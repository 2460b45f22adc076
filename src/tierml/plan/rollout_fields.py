"""Typed reads of a rollout's stored JSON: a wrong or missing field is a typed error naming it.

A rollout's spec comes from an administrator and its state from a database row; either may
be hand-edited or written by another version, so ``from_dict`` checks every field rather than
failing with a ``KeyError`` deep in the policy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tierml.core.errors import PlanInputError


def field_error(message: str, where: str, value: object = None) -> PlanInputError:
    return PlanInputError(
        f"Rollout {where}: {message} (got {repr(value)[:60]}).",
        hint="Give the rollout's fields with the types and ranges its documentation states.",
        field=where,
    )


def read_object(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise field_error("expected an object", where, raw)
    return raw


def read_only_keys(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    """Refuse keys the reader does not know: a misspelt criterion must not pass silently."""
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise field_error(f"unknown fields {unknown}; known: {list(known)}", where, unknown)


def read_text(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise field_error(f"'{key}' must be non-empty text", f"{where}.{key}", value)
    return value


def read_optional_text(data: Mapping[str, Any], key: str, where: str) -> str | None:
    return None if data.get(key) is None else read_text(data, key, where)


def read_int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise field_error(f"'{key}' must be a whole number", f"{where}.{key}", value)
    return value


def read_float(data: Mapping[str, Any], key: str, where: str) -> float:
    return as_float(data.get(key), f"{where}.{key}")


def read_optional_float(data: Mapping[str, Any], key: str, where: str) -> float | None:
    return None if data.get(key) is None else read_float(data, key, where)


def read_bool(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise field_error(f"'{key}' must be true or false", f"{where}.{key}", value)
    return value


def read_list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list | tuple):
        raise field_error(f"'{key}' must be a list", f"{where}.{key}", value)
    return list(value)


def read_texts(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    items = read_list(data, key, where)
    if not all(isinstance(item, str) and item for item in items):
        raise field_error(f"'{key}' must be a list of non-empty text", f"{where}.{key}", items)
    return tuple(items)


def as_float(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise field_error("must be a number", where, value)
    if not math.isfinite(value):
        raise field_error("must be finite", where, value)
    return float(value)
