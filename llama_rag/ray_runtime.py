"""Join or start Ray the same way for every command (index, serve, classify)."""

from __future__ import annotations

import logging
import os
from typing import Any

WORKER_NICENESS = "RAY_worker_niceness"  # read by the raylet when it starts


def ensure_ray(num_cpus: int | None = None, dashboard: bool = False) -> None:
    """Join RAY_ADDRESS (or the job's cluster) if set, else start a small local Ray.

    A local Ray is single-node and loopback-only: Ray would otherwise bind and
    advertise the machine's network address. The flag must be set before Ray's
    constants are imported, so call this before any ``import ray``. ``dashboard``
    starts a local Ray with its dashboard, whose state API Ray Train's placement-group
    cleaner polls (without it, it warns every few seconds and cleans up nothing).
    """
    if not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray runs workers at nice 15, so any normal process on a core starves the vLLM
        # CPU engine's lockstep OMP threads: with one core busy, decoding fell from 18
        # to 0.6 tokens/s; at nice 0 the engine shares the core instead.
        os.environ.setdefault(WORKER_NICENESS, "0")
    import ray

    if ray.is_initialized():
        return
    # No runtime_env here: inside `ray job submit` it would replace the job's working_dir.
    kwargs: dict[str, Any] = dict(logging_level=logging.WARNING, log_to_driver=True)
    if not os.environ.get("RAY_ADDRESS"):
        # Logical CPUs are a scheduling quota, not cores: max(4, cores) lets the loader,
        # the embedder and a vLLM replica fit on a 2-core laptop.
        kwargs.update(num_cpus=num_cpus or max(4, os.cpu_count() or 1),
                      include_dashboard=dashboard,
                      **({"dashboard_host": "127.0.0.1"} if dashboard else {}))
    try:
        ray.init(**kwargs)
    except ValueError as exc:
        if "existing cluster" not in str(exc):
            raise
        # a cluster started on this machine with `ray start` (found as ray.init() finds
        # it): join it as it is; its CPUs and dashboard are its own
        ray.init(address="auto", logging_level=logging.WARNING, log_to_driver=True)
