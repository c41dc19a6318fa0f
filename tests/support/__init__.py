"""Test support shared across the suites: the local anvil chain launcher."""
