"""A PDF in the served corpus (tests.helpers.field_guide_pdf: an outline, a running
header, page numbers, a chapter a page): chunks carry the outline's headings, citations
the page, and the cited file opens from /v1/files/ behind the key check."""

from __future__ import annotations

import httpx

from tests.cluster import AUTH, DOCS_KEY
from tests.helpers import GUIDE_PAGES

GUIDE = "manuals/field-guide.pdf"


def test_a_pdf_answer_cites_its_page_and_the_chapter_heading(llm_server):
    for page, (chapter, sentences) in enumerate(GUIDE_PAGES, start=1):
        question = {1: "How do I calm my bees before opening the hive?",
                    2: "How can I keep my colony from swarming in spring?",
                    3: "How much honey does a colony need to get through the winter?"}[page]
        found = httpx.post(f"{llm_server}/v1/search", headers=AUTH, timeout=60,
                           json={"query": question, "k": 3}).json()["hits"]
        top = next(h for h in found if h["source"] == GUIDE)
        assert top["page"] == page and top["heading"] == [chapter]
        assert "Beekeeping Field Guide" not in top["text"]  # the running header is gone
        body = httpx.post(f"{llm_server}/v1/ask", headers=AUTH, timeout=360, json={
            "question": question, "answer_mode": "extractive"}).json()
        assert body["answerable"], body
        cited = [c for c in body["citations"] if c["source"] == GUIDE]
        assert cited and all(c["page"] == page for c in cited), body
        assert any(s[:40] in body["answer"] for s in sentences), body["answer"]


def test_the_cited_file_is_served_behind_the_key_check(llm_server):
    url = f"{llm_server}/v1/files/{GUIDE}"
    got = httpx.get(url, headers=AUTH, timeout=30)
    assert got.status_code == 200 and got.content.startswith(b"%PDF")
    assert httpx.get(url, timeout=30).status_code == 401
    other = httpx.get(url, headers={"Authorization": f"Bearer {DOCS_KEY}"}, timeout=30)
    assert other.status_code == 403  # a key of the "extra" collection only
    for bad in ("../index/CURRENT", "manuals/missing.pdf", "%2e%2e/%2e%2e/etc/passwd"):
        resp = httpx.get(f"{llm_server}/v1/files/{bad}", headers=AUTH, timeout=30)
        assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
    info = httpx.get(f"{llm_server}/v1/index", headers=AUTH, timeout=30).json()
    assert info["documents_served"] is True
