"""Reliability tests: the session's real cluster and Serve app under faults, load and
hostile input. Each test is bounded in requests and seconds; servers listen on
127.0.0.1 only. Tests marked ``disruptive`` (they kill the LLM replica) run last."""

from __future__ import annotations


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("disruptive") is not None)
