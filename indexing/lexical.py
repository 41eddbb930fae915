"""BM25 over a version's chunks (bm25s): the lexical half of hybrid retrieval.

Dense MiniLM search misses exact identifiers and rare terms (``crc32``,
``dirs_exist_ok``, error codes); BM25 finds them. Row ``i`` here is row ``i`` of
``chunks.parquet`` and ``vectors.npy``, so both searches speak the same ids. The
tokenizer keeps identifiers whole (``\\w`` includes ``_``) and splits dotted names
(``zlib.crc32`` -> ``zlib``, ``crc32``); no stemming, so names match exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIRNAME = "lexical"
STOPWORDS = "en"


def _tokenize(texts: list[str]):
    import bm25s

    return bm25s.tokenize(texts, stopwords=STOPWORDS, show_progress=False)


class LexicalIndex:
    def __init__(self, bm25) -> None:
        self.bm25 = bm25

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalIndex":
        import bm25s

        bm25 = bm25s.BM25()
        if texts:
            bm25.index(_tokenize(texts), show_progress=False)
        return cls(bm25)

    def save(self, version_dir: Path) -> None:
        self.bm25.save(str(version_dir / DIRNAME), show_progress=False)

    @classmethod
    def load(cls, version_dir: Path) -> "LexicalIndex":
        import bm25s

        return cls(bm25s.BM25.load(str(version_dir / DIRNAME), mmap=True, show_progress=False))

    def scores(self, query: str, num_rows: int) -> np.ndarray:
        """BM25 score of every row for ``query`` (0 where no query term occurs)."""
        if num_rows == 0:
            return np.zeros(0, dtype=np.float32)
        import bm25s

        terms = bm25s.tokenize([query], stopwords=STOPWORDS, return_ids=False,
                               show_progress=False)[0]
        if not terms:  # only stopwords or punctuation ("the", "?!"): nothing to match
            return np.zeros(num_rows, dtype=np.float32)
        return np.asarray(self.bm25.get_scores(terms), dtype=np.float32)
