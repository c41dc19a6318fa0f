"""`nodus up` and `nodus down`: a subscriber's tunnel in one command (the machinery is in
`nodus_cli/tunnel/`)."""

from nodus_cli.connect.down import down
from nodus_cli.connect.up import up

__all__ = ["down", "up"]
