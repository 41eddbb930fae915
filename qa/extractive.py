"""Extractive answers: quote the passage of the retrieved text that answers the question.

A small model paraphrases documentation into fluent errors; the passage that
documentation itself gives is right by construction. Pure (no Ray); qa.answerer
runs it for /v1/ask's ``extractive`` mode, `llama-rag eval` and the index gate.

- ``best_passage`` (the general engine, any corpus): one to three consecutive
  sentences of the hits (and the code block they introduce), opening with the
  sentence the retriever's embedder finds closest to the question; a heading, FAQ
  question or sentence that restates the question is never the answer, the text
  under it is, and it lends that text its likeness to the question. Release notes
  answer only when no other hit can, or when the question asks about a change. For an
  index of API reference pages, qa.api_reference answers first.
- ``overlap_sentence`` (the baseline every eval report scores beside it): the
  sentence of the top hits that shares most words with the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Protocol, Sequence

from indexing.text import content_words, family_names, literals, names, spells, title_name
from qa.passages import Unit, answerable, is_example, is_term, units


@dataclass(frozen=True)
class Quote:
    """One sentence of the ``n``-th quoted hit (1-based, as the [n] marker says)."""

    n: int
    text: str
    score: float = 0.0
    code: str | None = None  # the code block the passage introduces (":", or a how-question)
    term: str | None = None  # the definition list's term the passage defines (is_term)


class Passage(Protocol):
    """What a selector needs of a retrieved chunk (llama_rag.protocol.Hit has these)."""

    source: str
    title: str
    text: str
    heading: list[str]
    start: int
    end: int


class Similarity(Protocol):
    """Cosine similarity by the retriever's embedder (RetrieverCore has it)."""

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]: ...


def candidates(hits: Sequence[Passage]) -> list[Quote]:
    """Every sentence of the hits that can open an answer (not code, a signature line,
    a heading or a question)."""
    return [Quote(u.n, u.text) for n, hit in enumerate(hits, start=1)
            for u in units(n, hit.text) if answerable(u) and u.text[-1:] in ".!"]


def overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that ``sentence`` contains."""
    q = content_words(question)
    return len(q & content_words(sentence)) / len(q) if q else 0.0


def overlap_sentence(question: str, hits: Sequence[Passage], top: int = 3) -> Quote | None:
    """The baseline: the sentence of the top ``top`` hits sharing most words with the question."""
    found = candidates(hits[:top])
    if not found:
        return None
    return max(found, key=lambda q: (overlap(question, q.text), -q.n))


PROMPT_WEIGHT = 0.6  # how much of a prompt's likeness to the question its text inherits
PROMPT_FLOOR = 0.35  # a prompt less like the question than this lends nothing
PROMPT_DECAY = 0.85  # per sentence further down the prompt's section
RANK_STEP = 0.01  # a lower-ranked hit's sentence needs this much more per rank
SHORT_WORDS = 30  # a passage this short reads on into the next sentence
MAX_WORDS = 60
MAX_SENTENCES = 3
CODE_LINES = 8
WINDOW = True  # embed each opening sentence with what its passage reads on to
RERANK = 8  # openings a tuned scorer judges (the untuned engine's best)
UNTUNED_WEIGHT = 0.5  # the untuned score's share beside a tuned scorer's probability
LITERAL_WEIGHT = 0.1  # added for a passage that holds every literal the question names
NAMED_WEIGHT = 0.1  # added for a passage of a document the question names ("Can grep ...?")


def literal_share(named: list[str], text: str) -> float:
    """Share of the question's literals that ``text`` spells out (0 when it names none)."""
    return sum(spells(text, lit) for lit in named) / len(named) if named else 0.0


class PassageScorer(Protocol):
    """A learned judge of "does this passage answer the question?" (a cross-encoder
    tuned on the corpus, indexing.passage_scorer): one probability per passage."""

    label: str  # NAME@VERSION, reported with the answers it chose

    def score(self, question: str, passages: list[str]) -> list[float]: ...


@dataclass(frozen=True)
class Openings:
    """The units of the hits and, for each unit that can open an answer, the passage it
    opens (what the embedder and a scorer judge)."""

    found: list[Unit]
    opens: list[int]
    texts: list[str]


def _headed(hit: Passage) -> str:
    """The hit's text under its section's heading, when the chunk was cut from further
    down the section and so lost it: the heading lends its likeness to the text under
    it, as a heading inside the chunk does."""
    title = hit.heading[-1] if hit.heading else ""
    if not title or title in hit.text[:len(title) + 200]:
        return hit.text
    return f"{title}\n\n{hit.text}"


def openings(hits: Sequence[Passage]) -> Openings:
    """Every answer the hits could give, as the engine and its tuning see them."""
    found = [u for n, hit in enumerate(hits, start=1)
             for u in units(n, _headed(hit), hit.heading)]
    opens = [i for i, u in enumerate(found) if answerable(u)]
    texts = [_passage(found, i, i, 0.0).text if WINDOW else found[i].text for i in opens]
    return Openings(found, opens, texts)


@dataclass(frozen=True)
class Scored:
    """One opening, scored by the untuned engine: where its passage starts, and the
    definition list's term it is under (if any)."""

    score: float
    opening: int  # index into Openings.found
    start: int
    term: str | None
    text: str  # the passage as the embedder and a scorer judge it (Openings.texts)


def scored_openings(question: str, hits: Sequence[Passage], embedder: Similarity
                    ) -> tuple[Openings, list[Scored]]:
    """Every opening with its untuned score: one embedding call for every sentence that
    can open an answer and every prompt (a run of prompt sentences embedded as one text)."""
    seen = openings(hits)
    found, opens = seen.found, seen.opens
    if not opens:
        return seen, []
    runs = _prompt_runs(found)
    prompt_texts = [" ".join(found[k].text for k in run) for run in runs]
    sims = embedder.similarity([question], seen.texts + prompt_texts)[0]
    run_sim = sims[len(opens):]
    scored: list[Scored] = []
    named = literals(question)
    asked = named_hits(question, hits)
    for i, sim, text in zip(opens, sims, seen.texts):
        u = found[i]
        if u.name and names_it(question, u.text):
            continue  # the question knows the name: it asks more than what the name is for
        score = (float(sim) + 0.2 * overlap(question, u.text) - RANK_STEP * (u.n - 1)
                 + LITERAL_WEIGHT * literal_share(named, text) + NAMED_WEIGHT * (u.n in asked))
        start, term = i, None
        section = _section(found, runs, i)
        if section is not None:
            r, distance = section
            score += PROMPT_WEIGHT * max(0.0, run_sim[r] - PROMPT_FLOOR) * PROMPT_DECAY ** distance
            if distance == 0:
                start = runs[r][-1] + 1  # the answer starts right under its prompt ("No. ...")
            term = _term(found, runs[r])  # anywhere in a term's section: it is what it defines
        scored.append(Scored(score, i, start, term, text))
    news = {n for n, hit in enumerate(hits, start=1) if is_changelog(hit)}
    if news and not asks_about_change(question):
        scored = [s for s in scored if found[s.opening].n not in news] or scored
    return seen, scored


def named_hits(question: str, hits: Sequence[Passage]) -> set[int]:
    """The hits (1-based) of documents the question names by their title's name: "Can
    grep ignore case?" is about grep's page, not less's option of the same name. A
    family's name ("git" beside "git-rebase") names no one page."""
    titled = {n: title_name(hit.title) for n, hit in enumerate(hits, start=1)}
    family = family_names(t for t in titled.values() if t)
    return {n for n, name in titled.items()
            if name and name not in family and names(question, name)}


# a page about changes: release notes, a changelog, "What's New In Python 3.4", by its
# title, or by its file's name or folder (whatsnew/3.4.html, NEWS, CHANGELOG.md)
_CHANGELOG_TITLE = re.compile(r"(?i)\bwhat[\u2019']?s new\b|\bchange ?logs?\b|\brelease notes?\b|"
                              r"^(?:[A-Z]\.\d+\.\s+)?release \d|^(?:news|changes)$")
_CHANGELOG_FILE = re.compile(r"(?i)(?:^|/)(?:whatsnew|relnotes|changelogs?|release[-_]?notes|news|"
                             r"changes|history)(?:/|\.\w+$|$)")
_ASKS_CHANGE = re.compile(r"(?i)\b(?:what[\u2019']?s new|new in|added|changed?|changes|since|"
                          r"versions?|deprecated|removed|released?|when|history|upgrad\w*|"
                          r"\d+\.\d+)\b")


def is_changelog(hit: Passage) -> bool:
    """A hit from release notes or a changelog: it names each feature in the words a
    question uses ("The new contextlib.suppress context manager ..."), and says how it
    changed, not how to use it."""
    return bool(_CHANGELOG_TITLE.search(hit.title or "") or _CHANGELOG_FILE.search(hit.source))


def asks_about_change(question: str) -> bool:
    """The question is about versions or changes, which release notes answer."""
    return bool(_ASKS_CHANGE.search(question))


def names_it(question: str, name_line: str) -> bool:
    """The question names the command or entry of a NAME line ("git-pull - Fetch from
    ...": "git pull" or "pull"; "cp - copy files ...": "cp")."""
    name = re.sub(r"\(\w+\)$", "", name_line.split(" ", 1)[0].rstrip(",")).lower()
    asked = question.lower()
    words = set(re.findall(r"[\w.+-]+", asked))
    spaced = rf"(?<!\w){re.escape(name.replace('-', ' '))}(?!\w)"
    return name in words or re.split(r"[-_.]", name)[-1] in words \
        or ("-" in name and re.search(spaced, asked) is not None)


# a question asking how to do something ("How can I ...?", "the fastest way to ...")
_ASKS_HOW = re.compile(r"(?i)\bhow\s+(?:do|can|could|should|would|may|to)\b|"
                       r"\b(?:way|command|steps?)\s+to\b")


def asks_how(question: str) -> bool:
    """The question asks how to do something: a code block right after the passage that
    answers it (a manual's example, "$ find $HOME -mtime 0") is the how."""
    return bool(_ASKS_HOW.search(question))


def quote_of(seen: Openings, s: Scored, score: float | None = None, how: bool = False
             ) -> Quote:
    """The answer an opening gives: its passage, with the term it defines (and, for a
    how-question, the code block right after it)."""
    quote = _passage(seen.found, s.start, s.opening, s.score if score is None else score, how)
    return replace(quote, term=s.term) if s.term else quote


def best_passage(question: str, hits: Sequence[Passage], embedder: Similarity,
                 scorer: PassageScorer | None = None) -> Quote | None:
    """The general engine's answer: the best-scored opening's passage. With a tuned
    ``scorer``, the ``RERANK`` best openings are ranked by its probability (plus the
    untuned score, weighted ``UNTUNED_WEIGHT``); the quote's score stays the untuned
    best one, so refusing is decided on the same scale either way."""
    seen, scored = scored_openings(question, hits, embedder)
    if not scored:
        return None
    best = max(scored, key=lambda s: s.score)
    chosen = best
    if scorer is not None:
        top = sorted(range(len(scored)), key=lambda k: -scored[k].score)[:RERANK]
        probs = scorer.score(question, [scored[k].text for k in top])
        k = max(zip(top, probs), key=lambda kp: kp[1] + UNTUNED_WEIGHT * scored[kp[0]].score)[0]
        chosen = scored[k]
    return quote_of(seen, chosen, best.score, asks_how(question))


def _term(found: list[Unit], run: list[int]) -> str | None:
    """The definition list's term that ends a prompt run ("-f --force"), without the
    section heading above it ("Download Options"), or None."""
    tail: list[str] = []
    for k in reversed(run):
        if not is_term(found[k].text):
            break
        tail.insert(0, found[k].text)
    return " ".join(tail) or None


def _prompt_runs(found: list[Unit]) -> list[list[int]]:
    """Consecutive prompt units of one hit (a FAQ question and its restatement)."""
    runs: list[list[int]] = []
    for i, u in enumerate(found):
        if not u.prompt:
            continue
        if runs and runs[-1][-1] == i - 1 and found[i - 1].n == u.n:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _section(found: list[Unit], runs: list[list[int]], i: int) -> tuple[int, int] | None:
    """(the prompt run whose section holds unit ``i``, how many answer sentences lie
    between them), or None: no prompt above it in its hit. A short unit right under the
    prompt ("No.", a section number) does not count."""
    distance = 0
    for j in range(i - 1, -1, -1):
        if found[j].n != found[i].n:
            return None
        if found[j].prompt:
            return next(r for r, run in enumerate(runs) if j in run), distance
        if found[j].words >= 4 or found[j].code:
            distance += 1
    return None


def _passage(found: list[Unit], start: int, best: int, score: float, how: bool = False
             ) -> Quote:
    """Sentences from ``start`` through ``best``, read on while short (into the next
    paragraph of the same hit too: a terse answer, "No.", or a problem stated in one
    paragraph, is often explained or solved in the next), and the code block the last
    one introduces, or (``how``) the one right after it."""
    n = found[best].n
    chosen = [u for u in found[start:best + 1] if not u.code and not u.prompt] or [found[best]]
    k = best + 1
    while (k < len(found) and found[k].n == n and not found[k].code and not found[k].prompt
           and not chosen[-1].row and not chosen[-1].name and not found[k].row
           and not (chosen[-1].defines and chosen[-1].text[-1:] not in ".!?")
           and len(chosen) < MAX_SENTENCES
           and sum(u.words for u in chosen) < SHORT_WORDS
           and sum(u.words for u in chosen) + found[k].words <= MAX_WORDS
           and not chosen[-1].text.endswith(":")):
        chosen.append(found[k])
        k += 1
    code = None
    last = chosen[-1]
    if (last.text.endswith(":") and k + 1 < len(found) and found[k].prompt
            and found[k + 1].n == n and found[k + 1].code):
        k += 1  # the listing's caption ("Recipe: Release tagging") stands between
    if k < len(found) and found[k].n == n and found[k].code and (last.text.endswith(":") or (
            how and not (last.code or last.name or last.row) and is_example(found[k].text))):
        code = "\n".join(found[k].text.splitlines()[:CODE_LINES])
    return Quote(n, " ".join(u.text for u in chosen), score, code)


# a document's own reference mark standing alone in prose ("see How to use bzip2 [2]",
# a table cell "References: [1]"), not an index (sys.argv[0])
_DOCUMENT_MARK = re.compile(r"(?:^|\s+)\[\d+(?:\s*[,\u2013-]\s*\d+)*\](?=[\s.,;:!?)]|$)")


def render(quote: Quote) -> str:
    """The answer text: the term it defines, the quoted passage with its marker before
    the final stop, then the code block it introduces. The passage's own reference marks
    are left out: in an answer they would read as citations of other hits."""
    passage = _DOCUMENT_MARK.sub("", quote.text).strip() or quote.text.rstrip()
    text = f"{quote.term}: {passage}" if quote.term else passage
    stop = text[-1] if text[-1:] in ".!?:" else ""
    said = f"{text[:-1] if stop else text} [{quote.n}]{stop}"
    return f"{said}\n\n{quote.code}" if quote.code else said
