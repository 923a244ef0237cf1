"""Shared HTTP machinery for API backends and model judges: retry decisions, backoff, Retry-After, an adaptive concurrency limiter and the sync-over-async bridge."""
