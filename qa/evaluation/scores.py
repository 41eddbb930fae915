"""Answer scores against a reference sentence, without a judge model.

Token-F1 is SQuAD's (lower-cased words, articles and punctuation dropped, bag
overlap); ROUGE-L is the F-measure of the longest common word subsequence. Support
is a lexical stand-in for entailment: an answer sentence is supported when a cited
chunk holds at least ``SUPPORTED`` of its content words. ``[n]`` markers are removed
before scoring.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from indexing.text import content_words, sentences, words

SUPPORTED = 0.8
_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_ARTICLES = frozenset({"a", "an", "the"})


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def tokens(text: str) -> list[str]:
    return [w for w in words(strip_markers(text)) if w not in _ARTICLES]


def token_f1(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    common = sum((Counter(a) & Counter(r)).values())
    if not common:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _lcs(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, start=1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_l(answer: str, reference: str) -> float:
    a, r = tokens(answer), tokens(reference)
    lcs = _lcs(a, r) if a and r else 0
    if not lcs:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def contains(chunk: str, sentence: str) -> bool:
    """``chunk`` holds ``sentence`` (whitespace and case aside)."""
    return " ".join(sentence.lower().split()) in " ".join(chunk.lower().split())


def _stems(text: str) -> set[str]:
    """Content words with a plural or third-person ``s`` dropped ("returns" = "return")."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in content_words(text)}


def supported(sentence: str, chunks: list[str]) -> bool:
    wanted = _stems(sentence)
    if not wanted:
        return True
    return any(len(wanted & _stems(c)) / len(wanted) >= SUPPORTED for c in chunks)


def answer_sentences(answer: str) -> list[str]:
    return [s for s in sentences(strip_markers(answer)) if len(s.split()) >= 3]


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def _plain(text: str) -> str:
    """Lower case, ligatures and curly quotes undone, whitespace folded (PDF text has
    all three)."""
    return " ".join(unicodedata.normalize("NFKC", text).translate(_QUOTES).lower().split())


def holds_fact(answer: str, facts: list[str]) -> bool:
    """The answer holds one of the key facts (a term or phrase, whole words where it
    begins or ends with one): ``LOCK`` is not in "block". A space between the words of
    a fact also matches a hyphen: "git clean" is the command git-clean(1) names."""
    text = _plain(strip_markers(answer))
    for fact in facts:
        want = _plain(fact)
        left = r"(?<!\w)" if want[:1].isalnum() else ""
        right = r"(?!\w)" if want[-1:].isalnum() else ""
        body = r"[\s-]".join(re.escape(part) for part in want.split(" "))
        if want and re.search(left + body + right, text):
            return True
    return False


def answer_words(answer: str) -> int:
    return len(strip_markers(answer).split())
