"""`scripts/bench`: every benchmark of the performance table, each next to its baseline in the
same run, written to bench/report.md. Numbers only: no benchmark asserts a time."""
