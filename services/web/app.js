// The question page: POST /v1/ask with stream: true, render its SSE events
// (sources, token..., done | error). Everything from the server goes in through
// textContent, never as HTML, so an indexed page cannot inject markup.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("ask-form"), question = $("question"), keyRow = $("key-row"), keyInput = $("api-key");
const button = $("ask"), statusLine = $("status"), errorBox = $("error"), result = $("result");
const answer = $("answer"), notFound = $("not-found"), sources = $("sources"), sourcesHeading = $("sources-heading");
const indexInfo = $("index-info");

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
    if (resp.ok) { indexInfo.textContent = describeIndex(await resp.json()); return; }
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
    path.textContent = c.source;
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

async function ask(event) {
  event.preventDefault();
  const text = question.value.trim();
  if (!text) { question.focus(); return; }
  if (keyInput.value.trim()) sessionStorage.setItem("llama-rag-key", keyInput.value.trim());
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
      method: "POST", headers: headers(), body: JSON.stringify({ question: text, stream: true }),
    });
    if (!resp.ok) {
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
keyInput.addEventListener("change", loadIndexInfo);
loadIndexInfo();
question.focus();
