"""Fixtures of the transaction sender tests (see tests/sender/support.py)."""

from __future__ import annotations

from tests.sender.support import make_sender, oracle_settings, sender, services

__all__ = ["make_sender", "oracle_settings", "sender", "services"]
