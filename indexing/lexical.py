"""BM25 over a version's chunks: the lexical half of hybrid retrieval.

Dense MiniLM search misses exact identifiers and rare terms (``crc32``,
``dirs_exist_ok``, error codes); BM25 finds them. Row ``i`` here is row ``i`` of
``chunks.parquet`` and ``vectors.npy``, so both searches speak the same ids. The
tokenizer (bm25s's) keeps identifiers whole (``\\w`` includes ``_``) and splits dotted
names (``zlib.crc32`` -> ``zlib``, ``crc32``); no stemming, so names match exactly.

The index keeps raw term counts, not bm25s's precomputed scores: a search limited to
some rows (a caller's access groups, indexing.access) takes N, document frequencies
and the mean length over those rows alone, so a document the caller may not read
changes no other document's score and the ranking is the one an index of only the
allowed rows would give. The formula is bm25s's default (Lucene's).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from indexing.rowsets import RowSetCache

DIRNAME = "lexical"
COUNTS = "counts.npz"  # this module's files; a directory without it is bm25s's (older versions)
VOCAB = "vocab.json"
STOPWORDS = "en"
K1, B = 1.5, 0.75


def _tokens(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, return_ids=False, show_progress=False)


class LexicalIndex:
    """Postings per term (rows and counts, CSC-like) and each row's length in tokens."""

    def __init__(self, vocab: dict[str, int], indptr: np.ndarray, rows: np.ndarray,
                 counts: np.ndarray, lengths: np.ndarray) -> None:
        self.vocab, self.indptr, self.rows, self.counts = vocab, indptr, rows, counts
        self.lengths = lengths.astype(np.float32)
        self._kept: RowSetCache[tuple[np.ndarray, int, float]] = RowSetCache()

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        vocab: dict[str, int] = {}
        postings: list[list[tuple[int, int]]] = []
        lengths = np.zeros(len(texts), dtype=np.float32)
        for row, tokens in enumerate(_tokens(texts) if texts else []):
            lengths[row] = len(tokens)
            for term, count in Counter(tokens).items():
                tid = vocab.setdefault(term, len(vocab))
                if tid == len(postings):
                    postings.append([])
                postings[tid].append((row, count))
        sizes = np.fromiter((len(p) for p in postings), np.int64, len(postings))
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = [pair for p in postings for pair in p]
        rows = np.fromiter((r for r, _ in flat), np.int32, len(flat))
        counts = np.fromiter((c for _, c in flat), np.float32, len(flat))
        return cls(vocab, indptr, rows, counts, lengths)

    def save(self, version_dir: Path) -> None:
        folder = version_dir / DIRNAME
        folder.mkdir(exist_ok=True)
        np.savez(folder / COUNTS, indptr=self.indptr, rows=self.rows, counts=self.counts,
                 lengths=self.lengths)
        (folder / VOCAB).write_text(json.dumps(self.vocab, ensure_ascii=False))

    @classmethod
    def exists(cls, version_dir: Path) -> bool:
        return (version_dir / DIRNAME / COUNTS).is_file()

    @classmethod
    def load(cls, version_dir: Path) -> "LexicalIndex":
        folder = version_dir / DIRNAME
        arrays = np.load(folder / COUNTS)
        return cls(json.loads((folder / VOCAB).read_text()), arrays["indptr"], arrays["rows"],
                   arrays["counts"], arrays["lengths"])

    def scores(self, query: str, num_rows: int, allowed: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every row for ``query`` (0 where no query term occurs); with
        ``allowed`` (sorted row ids), the statistics are those rows' alone and only they
        score."""
        out = np.zeros(num_rows, dtype=np.float32)
        terms = Counter(t for t in _tokens([query])[0] if t in self.vocab) if num_rows else {}
        if not terms:  # only stopwords, punctuation or unknown words: nothing to match
            return out
        mask, total, mean_length = self._statistics(num_rows, allowed)
        for term, repeats in terms.items():
            tid = self.vocab[term]
            rows = self.rows[self.indptr[tid]:self.indptr[tid + 1]]
            counts = self.counts[self.indptr[tid]:self.indptr[tid + 1]]
            if mask is not None:
                keep = mask[rows]
                rows, counts = rows[keep], counts[keep]
            if len(rows) == 0:
                continue
            idf = np.log(1 + (total - len(rows) + 0.5) / (len(rows) + 0.5))
            norm = K1 * (1 - B + B * self.lengths[rows] / mean_length)
            out[rows] += repeats * idf * counts / (counts + norm)
        return out

    def _statistics(self, num_rows: int, allowed: np.ndarray | None
                    ) -> tuple[np.ndarray | None, int, float]:
        """(mask of the rows searched, their count, their mean length); kept for the last
        few row sets, since a caller's groups give the same rows query after query."""
        if allowed is None:
            return None, num_rows, max(float(self.lengths.mean()), 1e-9)

        def make(rows: np.ndarray) -> tuple[np.ndarray, int, float]:
            mask = np.zeros(num_rows, dtype=bool)
            mask[rows] = True
            mean = float(self.lengths[rows].mean()) if len(rows) else 1.0
            return mask, len(rows), max(mean, 1e-9)

        return self._kept.get(allowed, make)
