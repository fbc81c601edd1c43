"""DRF APIs, one module per domain: catalog, tokens, metering."""
