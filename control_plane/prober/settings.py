"""The prober's settings: a section of the one settings tree (`Settings.prober`), read from the
`NODUS_PROBER_*` variables when the tree is built at start-up."""

from __future__ import annotations

from control_plane.settings import ProberSettings

__all__ = ["ProberSettings"]
