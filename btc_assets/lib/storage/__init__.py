"""Storage: the DuckDB warehouse (idempotent window writes) and the S3 mirror of its tables."""
