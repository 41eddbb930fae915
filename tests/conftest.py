import os

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Ray in tests is single-node and loopback-only (binds and advertises 127.0.0.1).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# Session fixtures (one Ray head, one index, one Serve app) for the integration and
# reliability tests; unit tests never ask for them, so they start nothing there.
from tests.cluster import (_figures, adapter_registry, audit_log,  # noqa: E402,F401
                           identity_provider, llm_server, lora_adapter, pace, qa_index,
                           ray_cluster, record)


def pytest_collection_modifyitems(config, items):
    """Integration tests that need the session's Serve app run after those that do not:
    its vLLM replica holds CPUs that Ray Train's workers and the ingest actors need on a
    2-core machine (a test file's name must not decide that)."""
    where = [i for i, item in enumerate(items) if "/integration/" in str(item.path)]
    if not where:
        return
    block = [items[i] for i in where]
    block.sort(key=lambda item: "llm_server" in getattr(item, "fixturenames", ()))  # stable
    for i, item in zip(where, block):
        items[i] = item


# Where the suite's time goes: setup + call + teardown per test file, printed at the end
# and written to test-output/timings.json (the table in docs/reliability.md).
_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    _SECONDS[path] = _SECONDS.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _SECONDS:
        return
    import json

    from tests.cluster import OUTPUT

    rows = sorted(_SECONDS.items(), key=lambda kv: -kv[1])
    terminalreporter.write_sep("=", "seconds per test file (setup + call + teardown)")
    for path, seconds in rows:
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "timings.json"  # `make test` runs two sessions: keep the first's rows
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**previous, **dict(rows)}, indent=2) + "\n")
