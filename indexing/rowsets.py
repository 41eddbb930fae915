"""What is computed for one set of row ids, kept for the last few sets.

A caller's access groups (and most filters) give the same rows query after query:
the vectors of those rows (indexing.store) and BM25's statistics over them
(indexing.lexical) are made once per set, not per query.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

import numpy as np

T = TypeVar("T")


class RowSetCache(Generic[T]):
    """``make(rows)`` for the last ``size`` row sets, found by their content."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._kept: dict[tuple[int, int], tuple[np.ndarray, T]] = {}

    def get(self, rows: np.ndarray, make: Callable[[np.ndarray], T]) -> T:
        rows = np.asarray(rows)
        key = (len(rows), hash(rows.tobytes()))
        kept = self._kept.get(key)
        if kept is not None and np.array_equal(kept[0], rows):
            return kept[1]
        value = make(rows)
        if len(self._kept) >= self.size:
            self._kept.pop(next(iter(self._kept)))
        self._kept[key] = (rows.copy(), value)
        return value
