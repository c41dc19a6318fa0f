"""VPN nodes: registration by their on-chain operator, public listing, agent key rotation."""
