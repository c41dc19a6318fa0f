"""The prober tests share the scoring tests' fixtures."""

from tests.control_plane.rewards.conftest import api, chain, sessions

__all__ = ["api", "chain", "sessions"]
