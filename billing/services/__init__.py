"""Writes, one module per domain: tokens (API tokens and gateway keys), metering (its own package)."""
