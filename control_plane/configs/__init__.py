"""Device configs: WireGuard and OpenVPN credentials, address allocation, revocation."""
