# syntax=docker/dockerfile:1.7
# Two images from one wheel, each with only what its service imports (pyproject.toml's extras):
#   docker build --target energyd -t energyd:0.1.0 .              # the node DaemonSet
#   docker build --target energyd-perf -t energyd:0.1.0-perf .    # + linux-perf (deploy/overlays/perf)
#   docker build --target adapter -t energyd-adapter:0.1.0 .      # the autoscaler Deployment
# The base is pinned to an exact release; pin its digest too when your registry policy asks:
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- builder: the project's wheel and every runtime dependency's wheel, nothing installed ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY energyd ./energyd
COPY adapter ./adapter
# The adapter's set contains energyd's. Every dependency ships manylinux wheels for CPython
# 3.11: nothing is compiled, and a slim base has no compiler to fall back on, so a missing wheel
# fails the build instead of growing it.
RUN pip wheel --prefer-binary --wheel-dir /wheels '.[adapter,gpu]'

# --- base: what both runtime images share ---
FROM ${PYTHON_IMAGE} AS base
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# --- energyd: prometheus-client, the kubernetes client and NVIDIA's NVML binding (pure Python,
# loaded only on nodes with a GPU driver: deploy/overlays/gpu) ---
# The wheels reach the image through a BuildKit bind mount: installed offline, never a layer.
FROM base AS energyd
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'energyd[gpu]' \
 && energyd --help >/dev/null
# Non-root by default; the DaemonSet sets runAsUser 0 with every capability dropped, because
# energy_uj is readable by root only (Linux >= 5.10).
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["energyd"]
CMD ["run"]

# --- energyd-perf: energyd plus the perf binary (opt-in, deploy/overlays/perf) ---
FROM energyd AS energyd-perf
USER 0:0
RUN apt-get update \
 && apt-get install -y --no-install-recommends linux-perf \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532

# --- adapter: the API, the solvers and the Prometheus client ---
FROM base AS adapter
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels 'energyd[adapter]' \
 && adapter --version && adapter run --help >/dev/null
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["adapter"]
CMD ["run", "--host", "0.0.0.0"]
