"""Ray Data programs; each runs as `python -m pipelines.NAME`, so `ray job submit` can launch it."""
