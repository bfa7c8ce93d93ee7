"""energyd: per-node RAPL energy telemetry, attributed to pods, exported for Prometheus."""

__version__ = "0.1.0"
