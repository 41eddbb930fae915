"""Multi-turn questions: the standalone query a follow-up is retrieved (and answered) with.

A follow-up ("And how do I write one?", "What about write()?") cannot be retrieved on
its own words. The bundled 135M model does not rewrite it reliably, so a rule does,
measured in docs/benchmarks.md against the follow-up alone and an LLM rewrite:

- a follow-up that names a bare API name (``write()``) after a turn about a dotted
  one, or leans on the conversation (a pronoun such as "it" or "one", an opening
  "and"/"what about", a few words only), is retrieved with the previous question
  before it; anything else stands alone;
- on an index of API reference pages the answer to the bare-name kind is chosen for
  the qualified question (qa.api_reference.qualified).

Pure functions; the client sends the turns (stateless server).
"""

from __future__ import annotations

import re
from typing import Sequence

from llama_rag.protocol import MAX_QUERY_CHARS, Turn
from qa.api_reference import qualified

_LEAD = re.compile(r"^\s*(?:and|also|so|then|ok(?:ay)?|now|but)\b[\s,]*", re.I)
_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*\??\s*$", re.I)
_LEANS = re.compile(r"\b(?:it|its|it's|one|ones|that|this|these|those|they|them|their|"
                    r"the same|another|instead|there)\b", re.I)


def last_question(history: Sequence[Turn]) -> str | None:
    return next((t.content for t in reversed(history) if t.role == "user"), None)


def leans_on_history(question: str) -> bool:
    return bool(_LEAD.match(question) or _WHAT_ABOUT.match(question)
                or _LEANS.search(question) or len(question.split()) <= 3)


def standalone(question: str, history: Sequence[Turn]) -> str:
    """The query that retrieves ``question`` after ``history``: the previous question
    before it when it depends on it (it names a bare API name, or leans on the
    conversation), else the question alone; never longer than a search query may be
    (the previous question is cut to what fits)."""
    previous = last_question(history)
    question = question[:MAX_QUERY_CHARS]
    if previous and (qualified(question, previous) is not None or leans_on_history(question)):
        room = MAX_QUERY_CHARS - len(question.strip()) - 1
        if room > 0:
            return f"{previous.strip()[:room].strip()} {question.strip()}"
    return question


def answered(question: str, history: Sequence[Turn], api_reference: bool = True) -> str:
    """What the answer is chosen for: on API reference pages, the qualified follow-up
    ("What does zipfile.ZipFile.write() do?") when it names a bare API name; else the
    retrieval query."""
    previous = last_question(history)
    named = qualified(question, previous) if previous and api_reference else None
    return named or standalone(question, history)
