"""Bounds on every number the adapter accepts from outside (requests, profiles, Prometheus).

Past a bound the input is refused naming the field (422 over HTTP, a message on the command
line, a degraded step for Prometheus). The bounds keep every computed term finite (the largest
replica count is MAX_ARRIVAL_RATE_RPS / MIN_THROUGHPUT_RPS = 1e12, the longest queue delay
MAX_BATCH_SIZE / MIN_ARRIVAL_RATE_RPS ~ 4e9 s) and every solve small. They are documented in
docs/adapter.md ("Limits"); change both together.
"""

from __future__ import annotations

# Requests: POST /decide and `adapter decide`.
MAX_BODY_BYTES = 1 << 20  # 1 MiB: the largest profile the limits below allow is ~0.5 MiB of JSON
MAX_ARRIVAL_RATE_RPS = 1e6
# A positive rate below this (one request in ~12 days) is refused: q(b) = (b - 1) / λ would
# reach 1e300 s and beyond.
MIN_ARRIVAL_RATE_RPS = 1e-6
MAX_SLA_S = 86_400.0
MAX_REPLICAS = 1000
MAX_BATCH_SIZE = 4096
MAX_BATCH_SIZES = 64  # entries of a request's batch_sizes
MAX_WEIGHT = 1e6  # alpha, beta, gamma, delta
# Error messages quote at most this many characters of what they refuse.
MAX_QUOTED_CHARS = 64

# Profiles (files and inline objects).
MAX_NAME_CHARS = 128
MAX_STAGES = 100
MAX_VARIANTS = 64  # per stage
MAX_BATCHES = 32  # measured points per variant
MAX_PROFILE_POINTS = 4096  # measured points over the whole profile: stages x variants x batches
MAX_LATENCY_S = 3600.0
MIN_THROUGHPUT_RPS = 1e-6
MAX_THROUGHPUT_RPS = 1e9
MAX_ENERGY_PER_REQUEST_J = 1e6
MAX_CORES = 1024.0
MAX_IDLE_POWER_W = 1e6

# Solvers: wall-clock limit of one solve (the loop and /decide), past which it is refused.
SOLVE_TIME_LIMIT_S = 10.0


def quoted(value: object) -> str:
    """`value` as repr, cut to MAX_QUOTED_CHARS, for an error message that refuses it."""
    text = repr(value)
    if len(text) <= MAX_QUOTED_CHARS:
        return text
    return f"{text[:MAX_QUOTED_CHARS]}... ({len(text)} characters)"
