"""Reads, one module per domain."""
