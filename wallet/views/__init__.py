"""Console pages, one module per domain."""
