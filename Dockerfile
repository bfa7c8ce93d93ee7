# syntax=docker/dockerfile:1.7
# One image for both services: `energyd` (the node DaemonSet) and `adapter` (the Deployment).
#   docker build -t energyd:0.1.0 .
#   docker build --target perf -t energyd:0.1.0-perf .    # adds linux-perf for the perf fallback
# The base is pinned to an exact release; pin its digest too when your registry policy asks:
#   docker buildx imagetools inspect python:3.11.11-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- builder: the project's wheel and every dependency's wheel, nothing installed ---
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY energyd ./energyd
COPY adapter ./adapter
# Every dependency ships manylinux wheels for CPython 3.11: nothing is compiled, and a slim base
# has no compiler to fall back on, so a missing wheel fails the build instead of growing it.
RUN pip wheel --prefer-binary --wheel-dir /wheels .

# --- runtime: the wheels installed offline; no build tools, no wheel files left behind ---
FROM ${PYTHON_IMAGE} AS runtime
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MPLCONFIGDIR=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels energyd \
 && energyd --help >/dev/null && adapter --help >/dev/null
# Non-root by default (the adapter needs nothing more). energyd's DaemonSet sets runAsUser 0,
# with every capability dropped, because energy_uj is readable by root only (Linux >= 5.10).
USER 65532:65532
EXPOSE 8080 9102
ENTRYPOINT ["adapter"]
CMD ["run", "--host", "0.0.0.0"]

# --- perf: the runtime plus the perf binary (opt-in, deploy/overlays/perf) ---
FROM runtime AS perf
USER 0:0
RUN apt-get update \
 && apt-get install -y --no-install-recommends linux-perf \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532

# The default target (last stage): the plain runtime.
FROM runtime AS final
