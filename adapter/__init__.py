"""adapter: energy-aware adaptation of ML inference pipelines (query -> predict -> solve -> actuate)."""

__version__ = "0.1.0"
