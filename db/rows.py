"""Turn result rows (db/pool.py Row) into msgspec Structs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

S = TypeVar("S")


def to_struct(cls: type[S], record: Any) -> S:
    """Convert one record (a row mapping) into `cls`."""
    return msgspec.convert(dict(record._mapping), cls)


def to_structs(cls: type[S], records: Sequence[Any]) -> list[S]:
    """Convert many records into a list of `cls`."""
    return [msgspec.convert(dict(r._mapping), cls) for r in records]
