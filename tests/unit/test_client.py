"""The CLI's HTTP client: error bodies become ApiError; bulk callers wait out Retry-After."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llama_rag.client import ApiError, Client


@pytest.fixture
def server():
    """Answers 429 (Retry-After: 0) to the first ``busy`` requests, then 200."""
    state = {"busy": 0, "seen": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            state["seen"] += 1
            limited = state["seen"] <= state["busy"]
            body = json.dumps({"error": {"message": "rate limit exceeded"}} if limited
                              else {"ok": True}).encode()
            self.send_response(429 if limited else 200)
            if limited:
                self.send_header("retry-after", "0")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", state
    httpd.shutdown()


def test_retries_wait_out_429_and_no_retries_fail_at_once(server):
    url, state = server
    state["busy"] = 2
    assert Client(url, retries=3).post("/v1/ask", {}) == {"ok": True} and state["seen"] == 3
    state.update(busy=5, seen=0)
    with pytest.raises(ApiError, match="HTTP 429: rate limit exceeded") as err:
        Client(url).post("/v1/ask", {})
    assert err.value.http_status == 429 and state["seen"] == 1
    with pytest.raises(ApiError, match="HTTP 429"):
        Client(url, retries=2).post("/v1/ask", {})
    assert state["seen"] == 4
