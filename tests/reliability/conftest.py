"""Reliability tests: the session's real cluster and Serve app under faults, load and
hostile input. Each test is bounded in requests and seconds; servers listen on
127.0.0.1 only. Tests marked ``disruptive`` (they kill the LLM replica) run last."""

from __future__ import annotations

import json

import pytest

from tests.cluster import OUTPUT


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)


@pytest.fixture(scope="session")
def _figures():
    figures: dict[str, dict] = {}
    yield figures
    if figures:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / "reliability.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**previous, **figures}, indent=2) + "\n")
        print(f"\nreliability figures: {path}")


@pytest.fixture
def record(_figures):
    """record(name, **figures): what a test measured, for docs/reliability.md
    (written to test-output/reliability.json, or $LLAMA_RAG_TEST_OUTPUT)."""

    def _record(name: str, **figures) -> None:
        _figures[name] = figures
        print(f"{name}: {figures}")

    return _record
