"""Domain state for /metrics, read from PostgreSQL (and a few chain views) at scrape time."""
