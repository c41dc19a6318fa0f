"""The live observability test runs the e2e subscriber lab: its namespaces, the control plane
served inside it and the node agent answering the probers on its endpoint."""

from tests.e2e.conftest import lab, short_tmp, subscriber_world

__all__ = ["lab", "short_tmp", "subscriber_world"]
