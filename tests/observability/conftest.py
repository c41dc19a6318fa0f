"""The live observability test runs the e2e lab: its namespaces and served control plane."""

from tests.e2e.conftest import control_plane, lab

__all__ = ["control_plane", "lab"]
