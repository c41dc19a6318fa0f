"""Fixtures of the reward posting tests: the sender's (tests/control_plane/chain/support.py)."""

from __future__ import annotations

from tests.control_plane.chain.support import make_sender, oracle_settings, sender, services

__all__ = ["make_sender", "oracle_settings", "sender", "services"]
