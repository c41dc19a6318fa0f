"""Pure tunnel code: address pools, endpoint grammar, WireGuard and OpenVPN rendering and PKI.
No database, no domain: everything here is a function of its arguments."""
