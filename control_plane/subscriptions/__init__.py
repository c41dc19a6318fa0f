"""Subscribers' on-chain payments and expiries."""
