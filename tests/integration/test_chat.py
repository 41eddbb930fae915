"""Chat over the documents: multi-turn /v1/ask, the `rag` model behind the OpenAI API
(the official `openai` client, streamed and not), and `llama-rag chat` in a terminal.
The session's real server (tests/cluster.py: the LLM writes answers there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cluster import API_KEY, AUTH, DOCS_KEY

pytestmark = pytest.mark.integration
CLI = str(Path(sys.executable).parent / "llama-rag")
ZIP = "library/zipfile.html"


def client(url: str, key: str = API_KEY):
    from openai import OpenAI

    return OpenAI(base_url=f"{url}/v1", api_key=key, timeout=300, max_retries=0)


def test_a_follow_up_retrieves_and_cites_the_page_of_the_conversation(llm_server):
    first = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60, json={
        "question": "How do I read a zip archive?", "answer_mode": "extractive"}).json()
    assert ZIP in [c["source"] for c in first["citations"]]
    history = [{"role": "user", "content": "How do I read a zip archive?"},
               {"role": "assistant", "content": first["answer"]}]
    second = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60, json={
        "question": "And how do I write one?", "history": history,
        "answer_mode": "extractive"}).json()
    assert second["answerable"] and ZIP in [c["source"] for c in second["citations"]]
    assert second["query"] == "How do I read a zip archive? And how do I write one?"
    found = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60,
                       json={"query": second["query"], "k": 5}).json()["hits"]
    assert ZIP in [h["source"] for h in found]
    bad = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=60, json={
        "question": "And then?", "history": [{"role": "tool", "content": "x"}]})
    assert bad.status_code == 400 and "history" in bad.text


def test_the_openai_client_gets_grounded_answers_from_model_rag(llm_server):
    openai = client(llm_server)
    ids = [m.id for m in openai.models.list().data]
    assert ids[:2] == ["rag", "rag:extra"] and "smollm2" in ids
    question = [{"role": "user", "content": "How do I read a zip archive?"}]
    answer = openai.chat.completions.create(model="rag", messages=question, max_tokens=64)
    text = answer.choices[0].message.content
    cited = answer.model_extra["citations"]
    assert text.strip() and answer.model_extra["answerable"] is True
    assert ZIP in [c["source"] for c in cited]
    assert all(f"[{c['n']}]" in text for c in cited)
    parts, final = [], None
    for chunk in openai.chat.completions.create(model="rag", messages=question, max_tokens=64,
                                                 stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        if chunk.model_extra and chunk.model_extra.get("citations") is not None:
            final = chunk
    assert "".join(parts).strip() and final is not None
    assert final.choices[0].finish_reason == "stop"
    assert ZIP in [c["source"] for c in final.model_extra["citations"]]
    off = openai.chat.completions.create(model="rag", max_tokens=32, messages=[
        {"role": "user", "content": "Who won the 1998 football world cup?"}])
    assert off.model_extra["answerable"] is False and off.model_extra["citations"] == []


def test_rag_models_keep_the_keys_collection_scopes(llm_server):
    from openai import NotFoundError, PermissionDeniedError

    scoped = client(llm_server, DOCS_KEY)
    ask = [{"role": "user", "content": "How do I compress data with bz2?"}]
    answer = scoped.chat.completions.create(model="rag:extra", messages=ask, max_tokens=32)
    assert answer.model_extra["index_version"]
    with pytest.raises(PermissionDeniedError):
        scoped.chat.completions.create(model="rag", messages=ask, max_tokens=32)
    with pytest.raises(NotFoundError):
        client(llm_server).chat.completions.create(model="rag:nope", messages=ask, max_tokens=8)


def test_llama_rag_chat_holds_a_conversation_in_the_terminal(llm_server, ray_cluster):
    out = subprocess.run([CLI, "chat", "--url", llm_server, "--answer-mode", "extractive"],
                         input="How do I read a zip archive?\nAnd how do I write one?\n/new\n\n",
                         capture_output=True, text=True, timeout=120,
                         env=ray_cluster.env(LLAMA_RAG_API_KEY=API_KEY))
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(ZIP) >= 2 and "(new conversation)" in out.stdout
    assert "Traceback" not in out.stderr
