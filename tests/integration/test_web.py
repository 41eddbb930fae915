"""The question page in a real browser (Playwright + Debian's headless Chromium)
against the session's real app: streamed answer with sources, the not-in-the-
documents state, auth errors, keyboard use. Saves a screenshot of an answer."""

from __future__ import annotations

import shutil

import pytest

from tests.cluster import API_KEY, OUTPUT

pytestmark = pytest.mark.integration
CHROMIUM = ("chromium-headless-shell", "chromium")  # Debian packages; see scripts/install-testdata.sh
ANSWER_TIMEOUT_MS = 300_000

# Counts how many different answer texts were shown while the answer was streaming.
COUNT_UPDATES = """
window.__streamedUpdates = 0;
new MutationObserver(() => {
  const result = document.getElementById('result');
  if (result && result.dataset.state === 'streaming' &&
      document.getElementById('answer').textContent) window.__streamedUpdates++;
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    if path is None:
        pytest.fail("no Chromium found: run `make testdata` (installs chromium-headless-shell)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, llm_server):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.add_init_script(COUNT_UPDATES)
    page.goto(llm_server + "/")
    yield page
    context.close()


def ask(page, question: str, key: str | None = API_KEY) -> None:
    if key is not None:
        page.get_by_label("API key").fill(key)
    page.get_by_label("Question").fill(question)
    page.get_by_label("Question").press("Enter")


def test_an_answer_streams_in_with_numbered_sources(page):
    from playwright.sync_api import expect

    expect(page.get_by_label("API key")).to_be_visible()  # auth is on: the page asks for a key
    ask(page, "How do I read a zip archive?")
    expect(page.locator("#result[data-state=answered]")).to_be_attached(timeout=ANSWER_TIMEOUT_MS)
    assert page.evaluate("window.__streamedUpdates") >= 2, "the answer did not stream"
    assert page.locator("#answer").inner_text().strip()
    sources = page.locator("#sources li")
    assert sources.count() >= 1
    assert "library/zipfile.html" in sources.locator(".source-path").all_inner_texts()
    first = sources.first
    assert first.locator(".source-title").inner_text().startswith("[")
    assert first.locator(".source-snippet").inner_text().strip()
    expect(page.locator("#not-found")).to_be_hidden()
    expect(page.locator("#index-info")).to_contain_text("Index version", timeout=30_000)
    expect(page.locator("#index-info")).to_contain_text("documents")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "web-answer.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_a_question_outside_the_documents_shows_not_in_the_documents(page):
    from playwright.sync_api import expect

    ask(page, "Who won the 1998 football world cup?")
    expect(page.locator("#result[data-state=not-found]")).to_be_attached(timeout=60_000)
    expect(page.locator("#not-found")).to_be_visible()
    expect(page.locator("#not-found")).to_contain_text("Not in the documents")
    assert page.locator("#sources li").count() == 0


def test_missing_and_wrong_keys_give_readable_errors(page):
    from playwright.sync_api import expect

    ask(page, "How do I read a zip archive?", key=None)
    expect(page.get_by_role("alert")).to_contain_text("needs a valid API key")
    ask(page, "How do I read a zip archive?", key="not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("not allowed")
    expect(page.locator("#result")).to_be_hidden()


def test_keyboard_only_use(page):
    """Focus starts in the question box; Tab reaches the Ask button; labels name every field."""
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("Question").focus()
    page.keyboard.type("Who won the 1998 football world cup?")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "ask"
    page.keyboard.press("Enter")
    page.wait_for_selector("#result[data-state=not-found]", timeout=60_000)
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.id") == "question"


def test_a_two_turn_conversation_keeps_the_first_turn_and_answers_the_follow_up(page):
    from playwright.sync_api import expect

    ask(page, "How do I read a zip archive?")
    expect(page.locator("#result[data-state=answered]")).to_be_attached(timeout=ANSWER_TIMEOUT_MS)
    first_answer = page.locator("#answer").inner_text()
    ask(page, "And how do I write one?", key=None)
    expect(page.locator("#current-question")).to_have_text("And how do I write one?")
    expect(page.locator("#result[data-state=answered]")).to_be_attached(timeout=ANSWER_TIMEOUT_MS)
    turns = page.locator("#conversation .turn")
    expect(turns).to_have_count(1)
    expect(turns.first.locator(".turn-question")).to_have_text("How do I read a zip archive?")
    assert turns.first.locator(".turn-answer").inner_text() == first_answer
    assert page.locator("#answer").inner_text().strip() and page.locator("#sources li").count()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    shot = OUTPUT / "web-chat.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.get_by_role("button", name="New conversation").click()
    expect(turns).to_have_count(0)
    expect(page.locator("#result")).to_be_hidden()
    expect(page.get_by_label("Question")).to_be_focused()
