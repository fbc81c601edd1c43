"""Reads, one module per domain: catalog, tokens, metering."""
