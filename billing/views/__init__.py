"""Console pages, one module per domain: catalog, tokens, metering."""
