"""Trying to read what one may not: a corpus of three groups' documents and shared
ones, the real embedder, the real retriever core and answerer (no Ray: the same code
the retrieval deployment runs), every path a request can take.

Each identity sends questions about every document (its own, others', shared), some
quoting a forbidden document verbatim, as searches in each mode (with and without
MMR), extractive answers, generated answers' prompts (what the LLM would be shown),
follow-ups after an allowed turn, entry lookups, counts and file checks. A leak is a
forbidden chunk id, source or code word anywhere in a response. Then the same
questions go to an index built from only the identity's documents: the hits and
answers must be the same, for dense and hybrid retrieval.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from indexing.chunking import Chunker
from indexing.embedder import token_counter
from indexing.retriever import RetrieverCore, settings_embedder
from llama_rag.config import load_settings
from llama_rag.errors import NotFoundError
from llama_rag.protocol import Access, AskRequest, AskResponse, SearchRequest, Turn
from pipelines.ingest import file_rows, run
from qa.answerer import Answerer

# group -> documents: (file name, title, code word, facts); every sentence of a document
# carries its code word, so a quoted or paraphrased leak is found by it
CORPUS = {
    "hr": [
        ("leave.md", "Parental leave", "QUILLFEATHER",
         ["Parental leave lasts sixteen weeks at full pay.",
          "Leave must be requested thirty days before it starts.",
          "Partners may split the weeks between them."]),
        ("reviews.md", "Performance reviews", "MARBLEWING",
         ["Performance reviews happen every March and September.",
          "Each review has a self assessment and a manager summary.",
          "A rating below two starts a support plan."]),
        ("salaries.txt", "Salary bands", "OSPREYLINE",
         ["Salary band four ranges from 61000 to 74000 euros.",
          "Bands are reviewed every January against the market.",
          "A promotion moves a person up at least one band."]),
        ("hiring.html", "Hiring process", "TANSYCREST",
         ["Candidates meet three interviewers in one afternoon.",
          "Offers are sent within five working days of the last interview.",
          "References are checked only after an offer is accepted."]),
    ],
    "finance": [
        ("budget.md", "Quarterly budget", "CORVIDBRASS",
         ["The quarterly budget for travel is 240000 euros.",
          "Unspent budget does not roll over to the next quarter.",
          "Department heads approve spending above 5000 euros."]),
        ("invoices.md", "Paying invoices", "HALCYONTIN",
         ["Invoices are paid thirty days after they are received.",
          "An invoice needs a purchase order number to be paid.",
          "Disputed invoices go to the controller within a week."]),
        ("audit.txt", "The annual audit", "PEWTERLARK",
         ["The external audit starts in the second week of February.",
          "Auditors receive read access to the ledger for six weeks.",
          "Findings are presented to the board in April."]),
        ("expenses.html", "Expense claims", "GARNETSWIFT",
         ["Expense claims are filed through the finance portal.",
          "Meals are refunded up to 45 euros a day when travelling.",
          "Receipts older than ninety days are not refunded."]),
    ],
    "eng": [
        ("deploy.md", "Deploying the service", "BASALTHERON",
         ["Deployments run every Tuesday and Thursday at ten.",
          "A deployment needs two approvals in the review tool.",
          "Rollbacks are started with the revert button on the pipeline page."]),
        ("oncall.md", "On-call rotation", "LICHENFORGE",
         ["The on-call rotation changes every Monday at nine.",
          "An incident page must be acknowledged within fifteen minutes.",
          "The on-call engineer gets one day off after a night page."]),
        ("build.txt", "Building from source", "COBALTWREN",
         ["The build needs a compiler with C17 support.",
          "Run make release to produce the optimized binaries.",
          "Build caches are kept for fourteen days."]),
        ("security.html", "Security keys", "FLINTMOTH",
         ["Production keys are rotated every ninety days.",
          "Keys are stored in the hardware vault in the second data center.",
          "A lost laptop must be reported within one hour."]),
    ],
    "public": [
        ("welcome.md", "Welcome", "SAFFRONGATE",
         ["Welcome to the company handbook.",
          "The office opens at eight and closes at seven.",
          "Visitors sign in at the front desk."]),
        ("holidays.md", "Public holidays", "WILLOWSTEP",
         ["The company observes eleven public holidays a year.",
          "The office is closed between Christmas and New Year.",
          "Holidays falling on a weekend are not moved."]),
        ("it-help.txt", "Getting IT help", "BRAMBLEDESK",
         ["Password resets are done at the self service page.",
          "The help desk answers tickets within four hours.",
          "New laptops are ordered through the help desk."]),
    ],
}
IDENTITIES = {"hr": {"hr"}, "finance": {"finance"}, "eng+hr": {"eng", "hr"}, "nobody": set()}


def _body(ext: str, title: str, code: str, facts: list[str]) -> str:
    sentences = [f"{f[:-1]} under policy {code}." for f in facts]
    if ext == "md":
        return f"# {title}\n\n" + "\n\n".join(sentences) + "\n"
    if ext == "html":
        return (f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
                + "".join(f"<p>{s}</p>" for s in sentences) + "</body></html>")
    return f"{title}\n\n" + "\n\n".join(sentences) + "\n"


def write_corpus(root: Path, groups: set[str] | None = None) -> Path:
    """Every document (``groups`` None, labeled by folder .access files), or only those
    ``groups`` may read (and the public ones), unlabeled."""
    for group, docs in CORPUS.items():
        if groups is not None and group != "public" and group not in groups:
            continue
        folder = root / ("shared" if group == "public" else group)
        folder.mkdir(parents=True, exist_ok=True)
        if groups is None and group != "public":
            (folder / ".access").write_text(group + "\n")
        for name, title, code, facts in docs:
            (folder / name).write_text(_body(name.rsplit(".", 1)[1], title, code, facts))
    return root


class LocalEmbedFiles:
    """The ingest pipeline's rows with the real embedder, in this process (no Ray)."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder

    def __call__(self, files, ref, settings):
        chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                          token_counter(ref.path))
        for f in files:
            rows = file_rows(f, chunker, settings.index, ingest=settings.ingest)
            batch = {k: np.array([r[k] for r in rows], dtype=object) for k in rows[0]}
            batch["error"] = np.array([r["error"] for r in rows])
            ok = batch["error"] == ""
            vectors = np.zeros((len(rows), self.embedder.info.dim), dtype=np.float32)
            if ok.any():
                vectors[ok] = self.embedder.encode([r["embed_text"] for r in rows if not r["error"]])
            batch["vector"] = vectors
            yield batch


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The labeled index and, per identity, an index of only its documents."""
    root = tmp_path_factory.mktemp("access")
    base = load_settings(None, {"index.dir": str(root / "all"),
                                "chunking.max_tokens": 48, "chunking.overlap_tokens": 8})
    embedder = settings_embedder(base)
    embed = LocalEmbedFiles(embedder)
    run([write_corpus(root / "corpus")], base, embed_files=embed)
    cores = {"all": RetrieverCore(base, embedder=embedder)}
    for name, groups in IDENTITIES.items():
        settings = base.model_copy(update={"index": base.index.model_copy(
            update={"dir": str(root / f"only-{name}")})})
        corpus = root / f"corpus-{name}"
        shutil.rmtree(corpus, ignore_errors=True)
        run([write_corpus(corpus, groups)], settings, embed_files=embed)
        cores[name] = RetrieverCore(settings, embedder=embedder)
    return base, cores


def _questions() -> list[tuple[str, str]]:
    """(group of the document asked about, question): a paraphrase and a verbatim quote
    of each document."""
    out = []
    for group, docs in CORPUS.items():
        for _, title, code, facts in docs:
            out.append((group, f"What does the {title.lower()} policy say?"))
            out.append((group, f"{facts[0][:-1]} under policy {code}."))
    return out


def _forbidden(groups: set[str]) -> tuple[set[str], set[str]]:
    """Sources and code words of the documents ``groups`` may not read."""
    sources, codes = set(), set()
    for group, docs in CORPUS.items():
        if group == "public" or group in groups:
            continue
        for name, _, code, _ in docs:
            sources.add(f"{group}/{name}")
            codes.add(code)
    return sources, codes


def _leaks(payload, sources: set[str], codes: set[str], asked: list[str]) -> list[str]:
    """What of a forbidden document a response shows (the caller's own words aside)."""
    text = json.dumps(payload, default=str)
    for words in asked:  # a question that quotes a forbidden document is the caller's text
        text = text.replace(json.dumps(words)[1:-1], "")
    return sorted({s for s in sources if s in text} | {c for c in codes if c in text})


def _dump(result) -> object:
    if isinstance(result, AskResponse) or hasattr(result, "model_dump"):
        return result.model_dump()
    return {"messages": result.messages, "hits": [h.model_dump() for h in result.hits]}


def test_no_identity_sees_a_forbidden_document_on_any_path(world):
    settings, cores = world
    core = cores["all"]
    tried, leaks = 0, []
    for name, groups in IDENTITIES.items():
        access = Access(subject=name, groups=frozenset(groups))
        sources, codes = _forbidden(groups)
        answerer = Answerer(core.scoped(access), settings)
        allowed_turn = [Turn(role="user", content="What does the welcome policy say?"),
                        Turn(role="assistant", content="Welcome to the company handbook [1].")]
        for _, question in _questions():
            calls = [(SearchRequest(query=question, k=8, mode=m, mmr=mmr), None)
                     for m in ("dense", "lexical", "hybrid") for mmr in (False, True)]
            for request, _ in calls:
                leaks += _leaks(core.search(request, access).model_dump(), sources, codes,
                                [question])
            for mode in ("extractive", "generate"):
                for history in ([], allowed_turn):
                    body = AskRequest(question=question, history=history)
                    asked = [question] + [t.content for t in history]
                    leaks += _leaks(_dump(answerer.prepare(body, mode)), sources, codes, asked)
            follow = AskRequest(question="and what else does it say?",
                                history=[Turn(role="user", content=question),
                                         Turn(role="assistant", content="It says several things.")])
            leaks += _leaks(_dump(answerer.prepare(follow, "extractive")), sources, codes,
                            [question, "It says several things."])
            tried += len(calls) + 5
        summary = core.summary(None, access)
        readable = sum(len(d) for g, d in CORPUS.items() if g == "public" or g in groups)
        assert summary.documents == readable
        for group, docs in CORPUS.items():
            for doc in docs:
                source = f"{'shared' if group == 'public' else group}/{doc[0]}"
                tried += 1
                if source in sources:
                    with pytest.raises(NotFoundError) as err:
                        core.check_source(source, access)
                    assert err.value.message == f"no document {source!r}"  # as a missing one
                else:
                    core.check_source(source, access)
        tried += 1
        assert tried >= 300 * (list(IDENTITIES).index(name) + 1), tried
    assert leaks == [], leaks
    print(f"\naccess leak test: {tried} requests over {len(IDENTITIES)} identities, "
          f"{len(leaks)} leaks")


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_a_group_gets_the_answers_an_index_of_only_its_documents_gives(world, mode):
    settings, cores = world
    for name, groups in IDENTITIES.items():
        access = Access(subject=name, groups=frozenset(groups))
        mine, alone = cores["all"].scoped(access), cores[name]
        for _, question in _questions():
            request = SearchRequest(query=question, k=5, mode=mode)
            got = [(h.source, h.chunk_id, round(h.score, 5)) for h in mine.search(request).hits]
            want = [(h.source, h.chunk_id, round(h.score, 5)) for h in alone.search(request).hits]
            assert got == want, (name, question)
        for _, question in _questions()[::3]:
            body = AskRequest(question=question, mode=mode)
            a = Answerer(mine, settings).prepare(body, "extractive")
            b = Answerer(alone, settings).prepare(body, "extractive")
            assert (a.answer, [c.chunk_id for c in a.citations]) == \
                (b.answer, [c.chunk_id for c in b.citations]), (name, question)
