"""slawatch: the composition root (CLI, daemon, web API, metrics, demo)."""

__version__ = "0.1.0"
