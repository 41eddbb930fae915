"""API entry lookup: the chunk that documents ``zipfile.ZipFile.read``, by name.

Dense and BM25 ranking both favour the examples that repeat a name over the one
line that defines it; a definition question ("What does json.dumps() do?") wants
that line. Built per index version on first use from the chunks' signature
paragraphs (llama_rag.extractive), held in memory.
"""

from __future__ import annotations

from collections import defaultdict

from llama_rag.extractive import entries, names_match


class SymbolIndex:
    def __init__(self, by_last: dict[str, list[tuple[int, str]]]) -> None:
        self.by_last = by_last

    @classmethod
    def build(cls, texts: list[str]) -> "SymbolIndex":
        by_last: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for row, text in enumerate(texts):
            for name in entries(text):
                by_last[name.rsplit(".", 1)[-1]].append((row, name))
        return cls(dict(by_last))

    def named(self, rows: set[int], prefixes: list[str]) -> list[int]:
        """Rows among ``rows`` documenting an entry whose last part starts with one of
        ``prefixes`` (a how-to question's words: "extract" finds ``extractall``)."""
        found = {row for last, listed in self.by_last.items()
                 if any(last.lower().replace("_", "").startswith(p) for p in prefixes)
                 for row, _ in listed if row in rows}
        return sorted(found)

    def rows(self, name: str, limit: int = 4) -> list[int]:
        """Rows documenting ``name`` (or a dotted suffix of it), most qualified first;
        the caller adds each row's successor, where an entry's line ends a chunk."""
        found = sorted(((-shown.count("."), row) for row, shown in
                        self.by_last.get(name.rsplit(".", 1)[-1], []) if names_match(shown, name)))
        rows: list[int] = []
        for _, row in found:
            if row not in rows:
                rows.append(row)
        return rows[:limit]
