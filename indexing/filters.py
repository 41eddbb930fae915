"""Which rows of a version a search may see: the caller's access groups
(indexing.access) and the request's filters (source prefix, file type, metadata).

The result is a sorted array of row ids, searched exactly (dense) and with BM25
statistics of those rows alone (indexing.lexical), or None: every row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from indexing.store import IndexVersion
from llama_rag.errors import InvalidInputError
from llama_rag.protocol import Access, Condition, Filters

BUILT_IN = ("source", "title")  # fields every row has, filterable by equality too


def _narrows(filters: Filters | None) -> bool:
    return bool(filters and (filters.source_prefix or filters.file_type or filters.metadata))


def limited(filters: Filters | None, access: Access | None) -> bool:
    """Whether anything limits the rows (else the index's own fast path searches all)."""
    return (access is not None and access.groups is not None) or _narrows(filters)


def visible_rows(version: IndexVersion, filters: Filters | None,
                 access: Access | None) -> np.ndarray | None:
    """Row ids of ``version`` the caller may see that pass ``filters`` (None: all)."""
    if not limited(filters, access):
        return None
    rows = version.groups.allowed(access.groups if access is not None else None)
    if not _narrows(filters):
        return rows  # the caller's groups alone: the version's cached rows
    keep = np.ones(version.chunks.num_rows, dtype=bool)
    if rows is not None:
        keep[:] = False
        keep[rows] = True
    if filters.source_prefix or filters.file_type:
        sources = version.chunks.column("source").to_pylist()
        if filters.source_prefix:
            keep &= np.fromiter((s.startswith(filters.source_prefix) for s in sources), bool,
                                len(sources))
        if filters.file_type:
            wanted = set(filters.file_type)
            keep &= np.fromiter((s.rsplit(".", 1)[-1].lower() in wanted for s in sources), bool,
                                len(sources))
    if filters.metadata:
        keep &= _metadata_mask(version, filters.metadata, keep)
    return np.flatnonzero(keep)


def _metadata_mask(version: IndexVersion, wanted: dict[str, Any], seen: np.ndarray) -> np.ndarray:
    """Rows whose metadata holds every condition; an unknown field (one no row the caller
    may see has) is a 400, so a typo does not quietly answer nothing."""
    rows = np.flatnonzero(seen)
    meta = version.metadata
    known = {k for r in rows for k in meta[r]} | set(BUILT_IN)
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown metadata field(s) {', '.join(map(repr, unknown))}; fields of this index: "
            f"{', '.join(sorted(known)[:30])}", param=f"filters.metadata.{unknown[0]}")
    conditions = {f: c if isinstance(c, Condition) else Condition(eq=c) for f, c in wanted.items()}
    out = np.zeros(len(seen), dtype=bool)
    builtin = {f: version.chunks.column(f).to_pylist() for f in conditions if f in BUILT_IN}
    for r in rows:
        out[r] = all(_holds(builtin[f][r] if f in builtin else meta[r].get(f), c)
                     for f, c in conditions.items())
    return out


def _holds(value: Any, cond: Condition) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return any(_holds(v, cond) for v in value)
    if cond.eq is not None and not _equal(value, cond.eq):
        return False
    if cond.in_ is not None and not any(_equal(value, w) for w in cond.in_):
        return False
    for op, bound in (("gt", cond.gt), ("gte", cond.gte), ("lt", cond.lt), ("lte", cond.lte)):
        if bound is None:
            continue
        pair = _comparable(value, bound)
        if pair is None:
            return False
        a, b = pair
        if not {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]:
            return False
    return True


def _equal(value: Any, wanted: Any) -> bool:
    pair = _comparable(value, wanted)
    if pair is not None:
        return pair[0] == pair[1]
    return str(value).casefold() == str(wanted).casefold()


def _comparable(value: Any, bound: Any) -> tuple[Any, Any] | None:
    """Both as numbers, or both as dates (UTC when no zone is given), else None."""
    if isinstance(bound, bool) or isinstance(value, bool):
        return (value, bound) if isinstance(value, bool) and isinstance(bound, bool) else None
    if isinstance(bound, (int, float)):
        try:
            return float(value), float(bound)
        except (TypeError, ValueError):
            return None
    a, b = _date(value), _date(bound)
    return (a, b) if a is not None and b is not None else None


def _date(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
