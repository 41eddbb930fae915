"""Multi-turn questions: the standalone query a follow-up is retrieved (and answered) with.

A follow-up ("And how do I write one?", "What about write()?") cannot be retrieved on
its own words. The bundled 135M model does not rewrite it reliably, so a rule does,
measured in docs/benchmarks.md against the follow-up alone and an LLM rewrite:

- a follow-up that names a bare API name (``write()``) after a turn about a dotted
  one, or leans on the conversation (a pronoun such as "it" or "one", an opening
  "and"/"what about", a few words only), is retrieved with the previous question
  before it; anything else stands alone;
- the answer to the bare-name kind is chosen for the qualified question, the name
  with that turn's owner: "What does zipfile.ZipFile.write() do?".

Pure functions; the client sends the turns (stateless server).
"""

from __future__ import annotations

import re
from typing import Literal, Sequence

from pydantic import BaseModel, Field

from llama_rag.extractive import subject

_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(\)")
_LEAD = re.compile(r"^\s*(?:and|also|so|then|ok(?:ay)?|now|but)\b[\s,]*", re.I)
_WHAT_ABOUT = re.compile(r"^\s*(?:and\s+)?(?:what|how)\s+about\s+(?P<x>.+?)\s*\??\s*$", re.I)
_LEANS = re.compile(r"\b(?:it|its|it's|one|ones|that|this|these|those|they|them|their|"
                    r"the same|another|instead|there)\b", re.I)


class Turn(BaseModel):
    """One earlier message of the conversation, as the client keeps it."""

    model_config = {"extra": "forbid"}

    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=8000)


def last_question(history: Sequence[Turn]) -> str | None:
    return next((t.content for t in reversed(history) if t.role == "user"), None)


def _owner(question: str) -> str | None:
    """``zipfile.ZipFile`` for a question about ``zipfile.ZipFile.read()``, or about the
    class ``zipfile.ZipFile`` itself (asked as a class, or a CapWords name not called)."""
    name = subject(question)
    if not name or "." not in name or " " in name:
        return None
    parent, last = name.rsplit(".", 1)
    is_class = re.search(r"\bclass\b", question) or (
        "()" not in question and last[:1].isupper() and not last.isupper())
    return name if is_class else parent


def qualified(question: str, previous: str) -> str | None:
    """The follow-up as a definition question about the previous turn's owner's member,
    when it asks about a bare API name (``write()``)."""
    owner = _owner(previous)
    calls = _CALL.findall(question)
    if not owner or len(calls) != 1:
        return None
    return f"What does {owner}.{calls[0]}() do?"


def leans_on_history(question: str) -> bool:
    return bool(_LEAD.match(question) or _WHAT_ABOUT.match(question)
                or _LEANS.search(question) or len(question.split()) <= 3)


def standalone(question: str, history: Sequence[Turn]) -> str:
    """The query that retrieves ``question`` after ``history``: the previous question
    before it when it depends on it (it names a bare API name, or leans on the
    conversation), else the question alone."""
    previous = last_question(history)
    if previous and (qualified(question, previous) is not None or leans_on_history(question)):
        return f"{previous.strip()} {question.strip()}"
    return question


def answered(question: str, history: Sequence[Turn]) -> str:
    """What the answer is chosen for: the qualified follow-up ("What does
    zipfile.ZipFile.write() do?") when it names a bare API name, else the retrieval query."""
    previous = last_question(history)
    return (qualified(question, previous) if previous else None) or standalone(question, history)
