"""DRF APIs, one module per domain."""
