"""Probers: independent measurement of nodes' reachability and round-trip time, signed."""
