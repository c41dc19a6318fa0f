"""Nodus control plane: verifies on-chain payments and stakes, serves configs and node feeds."""

__version__ = "0.1.0"
