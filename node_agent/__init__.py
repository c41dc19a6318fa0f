"""nodus-agent: keeps a node's WireGuard/OpenVPN peers in step with the control plane."""

__version__ = "0.1.0"
