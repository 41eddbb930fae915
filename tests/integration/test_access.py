"""Access control through the real Serve app: the session corpus's manuals/ folder is
labeled ``beekeepers`` (tests.cluster), TEAM_KEY reads group ``eng`` and public pages,
tokens come from the session's identity provider. Every route a caller can reach is
asked about the labeled PDF; the wider leak test is tests/reliability/test_access_leaks.py.
"""

from __future__ import annotations

import json

import httpx

from services.tokens import digest, subject_of_key
from tests.cluster import API_KEY, AUDIENCE, GUIDE_GROUP, TEAM_KEY
from tests.helpers import GUIDE_PAGES

GUIDE = "manuals/field-guide.pdf"
QUESTIONS = ["How do I calm my bees before opening the hive?",
             GUIDE_PAGES[2][1][0],  # a sentence of the PDF, verbatim
             "How much honey does a colony need to get through the winter?"]


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _events(url: str, path: str, body: dict, headers: dict) -> str:
    with httpx.stream("POST", f"{url}{path}", headers=headers, timeout=300,
                      json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        return "".join(resp.iter_lines())


def _shows_guide(payload) -> bool:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    words = [s[:40] for _, sentences in GUIDE_PAGES for s in sentences]
    return GUIDE in text or any(w in text for w in words if w not in QUESTIONS[1])


def test_a_caller_without_the_group_never_sees_the_labeled_pdf(llm_server):
    team = _bearer(TEAM_KEY)
    for question in QUESTIONS:
        for mode in ("dense", "lexical", "hybrid"):
            found = httpx.post(f"{llm_server}/v1/search", headers=team, timeout=60,
                               json={"query": question, "k": 8, "mode": mode}).json()
            assert found["hits"] and not _shows_guide(found), found
        asked = httpx.post(f"{llm_server}/v1/ask", headers=team, timeout=120, json={
            "question": question, "answer_mode": "extractive"}).json()
        assert not _shows_guide({**asked, "query": None}), asked
        chat = httpx.post(f"{llm_server}/v1/chat/completions", headers=team, timeout=120, json={
            "model": "rag", "answer_mode": "extractive",
            "messages": [{"role": "user", "content": question}]}).json()
        assert not _shows_guide(chat["citations"]), chat
    stream = _events(llm_server, "/v1/ask", {"question": QUESTIONS[0], "max_tokens": 16}, team)
    assert "event: done" in stream and not _shows_guide(stream)
    # the same question with a key that reads everything finds the PDF: the label did it
    everyone = httpx.post(f"{llm_server}/v1/search", headers=_bearer(API_KEY), timeout=60,
                          json={"query": QUESTIONS[0], "k": 8}).json()
    assert _shows_guide(everyone)


def test_counts_and_files_hide_what_the_caller_may_not_read(llm_server):
    full = httpx.get(f"{llm_server}/v1/index", headers=_bearer(API_KEY), timeout=30).json()
    team = httpx.get(f"{llm_server}/v1/index", headers=_bearer(TEAM_KEY), timeout=30).json()
    assert team["documents"] == full["documents"] - 1 and team["chunks"] < full["chunks"]
    url = f"{llm_server}/v1/files/{GUIDE}"
    hidden = httpx.get(url, headers=_bearer(TEAM_KEY), timeout=30)
    missing = httpx.get(f"{llm_server}/v1/files/manuals/absent.pdf", headers=_bearer(TEAM_KEY),
                        timeout=30)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["message"] == f"no document {GUIDE!r}"


def test_tokens_of_the_identity_provider_carry_groups_and_bad_ones_get_401(
        llm_server, identity_provider):
    ask = {"query": QUESTIONS[0], "k": 8}
    member = identity_provider.token([GUIDE_GROUP])
    found = httpx.post(f"{llm_server}/v1/search", headers=_bearer(member), timeout=60, json=ask)
    assert found.status_code == 200 and _shows_guide(found.json())
    outsider = identity_provider.token(["eng"])
    found = httpx.post(f"{llm_server}/v1/search", headers=_bearer(outsider), timeout=60, json=ask)
    assert found.status_code == 200 and not _shows_guide(found.json())
    bad = {"expired": identity_provider.token([GUIDE_GROUP], expires_in=-120),
           "another audience": identity_provider.token([GUIDE_GROUP], aud=AUDIENCE + "-x"),
           "signature": member[:-8] + ("A" * 8 if not member.endswith("A" * 8) else "B" * 8)}
    for why, token in bad.items():
        resp = httpx.post(f"{llm_server}/v1/search", headers=_bearer(token), timeout=30, json=ask)
        error = resp.json()["error"]
        assert resp.status_code == 401 and error["type"] == "authentication_error", (why, error)
        assert token not in resp.text


def test_metadata_filters_and_the_audit_trail(llm_server, audit_log):
    def search(filters):
        return httpx.post(f"{llm_server}/v1/search", headers=_bearer(TEAM_KEY), timeout=60,
                          json={"query": "read a zip archive", "filters": filters})

    dated = search({"metadata": {"modified": {"gte": "2000-01-01T00:00:00Z"}}})
    assert dated.status_code == 200 and dated.json()["hits"]
    unknown = search({"metadata": {"no_such_field": "x"}})
    assert unknown.status_code == 400 and "no_such_field" in unknown.json()["error"]["message"]
    operator = search({"metadata": {"modified": {"between": [1, 2]}}})
    assert operator.status_code == 400
    lines = [json.loads(x) for x in audit_log.read_text().splitlines()]
    team = subject_of_key(digest(TEAM_KEY))
    mine = [x for x in lines if x["subject"] == team]
    assert mine and all(x["groups"] == ["eng"] for x in mine)
    assert any(x["subject"] == "sub:tester" for x in lines)  # the tokens' callers too
    assert {"ask", "search"} <= {x["route"] for x in mine}
    assert all(x["index_version"] and "request_id" in x for x in mine)
    assert TEAM_KEY not in audit_log.read_text() and API_KEY not in audit_log.read_text()
