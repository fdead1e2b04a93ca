"""Signals: per-request and per-account evidence computed from ingested traffic."""
