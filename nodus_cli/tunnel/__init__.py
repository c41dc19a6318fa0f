"""The machinery of `nodus up` / `nodus down`: a tunnel brought up with `ip`, `wg`, `nft` and
`openvpn` (never wg-quick or resolvconf), every step recorded so `down` can undo exactly it."""
