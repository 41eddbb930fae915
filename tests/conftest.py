import os

# Nothing in the test suite may reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Ray in tests is single-node and loopback-only (binds and advertises 127.0.0.1).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

# Session fixtures (one Ray head, one index, one Serve app) for the integration and
# reliability tests; unit tests never ask for them, so they start nothing there.
from tests.cluster import llm_server, qa_index, ray_cluster  # noqa: E402,F401
