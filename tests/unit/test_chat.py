"""Conversations: the standalone query of a follow-up, and the OpenAI mapping of `rag`."""

from __future__ import annotations

import asyncio
import json

import pytest

from llama_rag.protocol import Turn
from qa.conversation import answered, leans_on_history, standalone
from llama_rag.errors import InvalidInputError
from llama_rag.protocol import AskResponse, Citation, Timings, Usage
from services import chat
from services.ray_compat import ChatCompletionRequest


def turns(*questions: str) -> list[Turn]:
    out = []
    for q in questions:
        out += [Turn(role="user", content=q), Turn(role="assistant", content="An answer [1].")]
    return out


@pytest.mark.parametrize("question, history, query, answered_as", [
    ("How do I read a zip archive?", [], "How do I read a zip archive?", None),
    ("And what does write() do?", turns("What does zipfile.ZipFile.read() do?"),
     "What does zipfile.ZipFile.read() do? And what does write() do?",
     "What does zipfile.ZipFile.write() do?"),
    ("What about close()?", turns("What is the zipfile.ZipFile class?"),
     "What is the zipfile.ZipFile class? What about close()?",
     "What does zipfile.ZipFile.close() do?"),
    ("And decompress()?", turns("What does zlib.compress() do?"),
     "What does zlib.compress() do? And decompress()?", "What does zlib.decompress() do?"),
    ("And how do I write one?", turns("How do I read a zip archive?"),
     "How do I read a zip archive? And how do I write one?", None),
    ("How do I parse JSON text into Python objects?", turns("How do I read a zip archive?"),
     "How do I parse JSON text into Python objects?", None),
])
def test_standalone_query_of_a_follow_up(question, history, query, answered_as):
    assert standalone(question, history) == query
    assert answered(question, history) == (answered_as or query)


def test_the_last_user_turn_is_the_context():
    history = turns("What does tarfile.TarFile.add() do?", "What does zipfile.ZipFile.read() do?")
    assert answered("And extract()?", history) == "What does zipfile.ZipFile.extract() do?"
    assert leans_on_history("Why?") and not leans_on_history("How do I compress a file quickly?")


def test_rag_model_ids_name_the_collection():
    assert chat.rag_collection("rag", "rag") == ""
    assert chat.rag_collection("rag:docs", "rag") == "docs"
    assert chat.rag_collection("smollm2", "rag") is None
    assert chat.rag_collection("rag:", "rag") is None and chat.rag_collection("rag", "") is None
    assert chat.model_ids("rag", ["default", "faq", "docs"]) == ["rag", "rag:docs", "rag:faq"]


def request(**kw) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="rag", **kw)


def test_chat_messages_become_an_ask_request():
    body = request(messages=[
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I read a zip archive?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Use ZipFile [1]."}]},
        {"role": "user", "content": "And how do I write one?"}], stream=True, temperature=0.2)
    ask = chat.ask_request(body, "docs")
    assert ask.question == "And how do I write one?" and ask.collection == "docs"
    assert [(t.role, t.content) for t in ask.history] == [
        ("user", "How do I read a zip archive?"), ("assistant", "Use ZipFile [1].")]
    assert ask.stream is True and ask.temperature == 0.2
    with pytest.raises(InvalidInputError, match="last message must be the user's"):
        chat.ask_request(request(messages=[{"role": "assistant", "content": "hi"}]), "")
    with pytest.raises(InvalidInputError, match="question"):
        chat.ask_request(request(messages=[{"role": "user", "content": "  "}]), "")


DONE = AskResponse(answer="Return the bytes [1].", answerable=True, citation_mode="quoted",
                   citations=[Citation(n=1, source="library/zipfile.html", title="zipfile",
                                       snippet="Return the bytes", score=1.0, chunk_id="c1")],
                   usage=Usage(), timings=Timings(retrieve_ms=1, generate_ms=1),
                   index_version="v1")


def test_a_completion_carries_the_answer_and_the_citations():
    body = chat.completion(DONE, "rag")
    assert body["object"] == "chat.completion" and body["model"] == "rag"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": DONE.answer}
    assert body["citations"][0]["source"] == "library/zipfile.html" and body["answerable"]


def test_streamed_chunks_end_with_the_citations_then_done():
    async def events():
        yield "sources", {"citations": []}
        yield "token", {"text": "Return the bytes"}
        yield "token", {"text": " [1]."}
        yield "done", DONE.model_dump()

    async def collect():
        return [line async for line in chat.chunks(events(), "rag")]

    lines = asyncio.run(collect())
    assert lines[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == DONE.answer
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop" and final["citations"][0]["n"] == 1
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == final["id"] for c in chunks)


def test_a_standalone_query_never_outgrows_a_search_query():
    """A follow-up after a long turn (schemathesis sent 8,000 characters of history and
    the question "0") is retrieved with what of the previous question fits."""
    from llama_rag.protocol import MAX_QUERY_CHARS, SearchRequest

    history = [Turn(role="user", content="0" * 8000)]
    query = standalone("0", history)
    assert len(query) <= MAX_QUERY_CHARS and query.endswith(" 0")
    SearchRequest(query=query)  # valid
    assert len(standalone("x" * 5000, [])) == MAX_QUERY_CHARS
