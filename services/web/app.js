// The question page, a conversation: POST /v1/ask with stream: true and the turns so
// far (history: the server keeps no state), render its SSE events (sources, token...,
// done | error); each finished turn moves up into #conversation. Everything from the
// server goes in through textContent, never as HTML, so an indexed page cannot inject
// markup.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("ask-form"), question = $("question"), keyRow = $("key-row"), keyInput = $("api-key");
const button = $("ask"), statusLine = $("status"), errorBox = $("error"), result = $("result");
const answer = $("answer"), notFound = $("not-found"), sources = $("sources"), sourcesHeading = $("sources-heading");
const indexInfo = $("index-info"), conversation = $("conversation"), newButton = $("new-conversation");
const currentQuestion = $("current-question");
let history = [];  // [{role: "user" | "assistant", content}], answered turns only

const MESSAGES = {
  401: "This server needs a valid API key: enter it in the API key field.",
  403: "This API key is not allowed to use this service.",
  413: "The question is too long.",
  429: "Too many requests for this API key.",
  503: "The service is busy or still starting.",
};

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = keyInput.value.trim() || sessionStorage.getItem("llama-rag-key") || "";
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function needKey() {
  keyRow.hidden = false;
}

async function errorText(resp) {
  let detail = "";
  try { detail = (await resp.json()).error.message || ""; } catch (_) { /* not JSON */ }
  const retry = resp.headers.get("Retry-After");
  let text = MESSAGES[resp.status] || "The request failed (HTTP " + resp.status + ").";
  if (retry) text += " Try again in " + retry + " s.";
  if (detail && !text.includes(detail)) text += " (" + detail + ")";
  return text;
}

function showError(text) {
  errorBox.textContent = text;
  errorBox.hidden = false;
}

function describeIndex(info) {
  return "Index version " + info.version + " · " + info.documents + " documents · " + info.chunks + " chunks";
}

async function loadIndexInfo() {
  try {
    const resp = await fetch("/v1/index", { headers: headers() });
    if (resp.ok) {
      const info = await resp.json();
      documentsServed = Boolean(info.documents_served);
      indexInfo.textContent = describeIndex(info);
      return;
    }
    if (resp.status === 401 || resp.status === 403) {
      needKey();
      indexInfo.textContent = "Index: enter an API key to see it";
    } else if (resp.status === 503) {
      indexInfo.textContent = "Index: none published yet";
    } else {
      indexInfo.textContent = "Index: unavailable (HTTP " + resp.status + ")";
    }
  } catch (_) {
    indexInfo.textContent = "Index: the server cannot be reached";
  }
}

let documentsServed = false;  // GET /v1/index says whether /v1/files/ serves the corpus

// The file is fetched with the page's API key (a plain link would carry none), then
// opened from a blob URL; "#page=N" makes the browser's PDF viewer open that page.
async function openDocument(href) {
  const [url, fragment] = href.split("#");
  const resp = await fetch(url, { headers: headers() });
  if (!resp.ok) { showError(await errorText(resp)); return; }
  const blob = URL.createObjectURL(await resp.blob());
  window.open(blob + (fragment ? "#" + fragment : ""), "_blank", "noopener");
}

function renderSources(citations) {
  sources.replaceChildren();
  for (const c of citations) {
    const li = document.createElement("li");
    li.value = c.n;
    li.className = "source";
    const title = document.createElement("div");
    title.className = "source-title";
    title.textContent = "[" + c.n + "] " + (c.title || c.source);
    const path = document.createElement("div");
    path.className = "source-path";
    const where = c.source + (c.page ? ", page " + c.page : "");
    if (documentsServed) {
      const link = document.createElement("a");
      link.href = "/v1/files/" + c.source.split("/").map(encodeURIComponent).join("/")
        + (c.page ? "#page=" + c.page : "");
      link.textContent = where;
      link.addEventListener("click", (event) => { event.preventDefault(); openDocument(link.href); });
      path.append(link);
    } else {
      path.textContent = where;
    }
    const snippet = document.createElement("p");
    snippet.className = "source-snippet";
    snippet.textContent = c.snippet;
    li.append(title, path, snippet);
    sources.append(li);
  }
  sourcesHeading.hidden = citations.length === 0;
}

function handleEvent(name, data) {
  if (name === "token") {
    answer.textContent += data.text;
  } else if (name === "sources") {
    statusLine.textContent = "Found " + data.citations.length + " passages; writing the answer…";
  } else if (name === "done") {
    answer.textContent = data.answer;
    notFound.hidden = data.answerable;
    renderSources(data.citations || []);
    statusLine.textContent = data.answerable
      ? "Answered from index version " + data.index_version + "."
      : "No passage in the index answers this question.";
    result.dataset.state = data.answerable ? "answered" : "not-found";
    history.push({ role: "user", content: currentQuestion.textContent },
                 { role: "assistant", content: data.answer });
    newButton.disabled = false;
    question.placeholder = "Ask a follow-up question";
  } else if (name === "error") {
    showError("The answer stopped: " + data.error.message);
    result.dataset.state = "error";
  }
}

async function readEvents(resp) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) handleEvent(name, JSON.parse(data));
    }
  }
}

// The finished turn shown in #result, copied into #conversation as plain text.
function archiveTurn() {
  const state = result.dataset.state;
  if (result.hidden || (state !== "answered" && state !== "not-found")) return;
  const turn = document.createElement("article");
  turn.className = "turn";
  const q = document.createElement("p");
  q.className = "turn-question";
  q.textContent = currentQuestion.textContent;
  const a = document.createElement("div");
  a.className = "turn-answer";
  a.textContent = state === "answered" ? answer.textContent : "Not in the documents.";
  const list = document.createElement("ol");
  for (const li of sources.children) {
    const item = document.createElement("li");
    item.textContent = li.querySelector(".source-title").textContent + " · " +
      li.querySelector(".source-path").textContent;
    list.append(item);
  }
  turn.append(q, a, list);
  conversation.append(turn);
}

function newConversation() {
  history = [];
  conversation.replaceChildren();
  result.hidden = true;
  result.dataset.state = "";
  errorBox.hidden = true;
  statusLine.textContent = "New conversation.";
  newButton.disabled = true;
  question.placeholder = "How do I read a zip archive?";
  question.value = "";
  question.focus();
}

async function ask(event) {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) { question.focus(); return; }
  if (keyInput.value.trim()) sessionStorage.setItem("llama-rag-key", keyInput.value.trim());
  archiveTurn();
  currentQuestion.textContent = text;
  question.value = "";
  errorBox.hidden = true;
  result.hidden = false;
  result.dataset.state = "streaming";
  notFound.hidden = true;
  answer.textContent = "";
  renderSources([]);
  statusLine.textContent = "Searching the documents…";
  button.disabled = true;
  answer.setAttribute("aria-busy", "true");
  try {
    const resp = await fetch("/v1/ask", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ question: text, stream: true, history: history }),
    });
    if (!resp.ok) {
      question.value = text;  // nothing was answered: keep the question to send again
      if (resp.status === 401 || resp.status === 403) { needKey(); keyInput.focus(); }
      result.hidden = true;
      result.dataset.state = "error";
      statusLine.textContent = "";
      showError(await errorText(resp));
      return;
    }
    await readEvents(resp);
    loadIndexInfo();
  } catch (err) {
    showError("The server cannot be reached: " + err.message);
    result.dataset.state = "error";
  } finally {
    button.disabled = false;
    answer.setAttribute("aria-busy", "false");
  }
}

form.addEventListener("submit", ask);
newButton.addEventListener("click", newConversation);
keyInput.addEventListener("change", loadIndexInfo);
loadIndexInfo();
question.focus();
