"""The subscriber's commands, at the top level of `nodus` (`nodus login`, `nodus plan`, ...):
one file per command or small family. They share support/session.py (the signed-in API client)
and support/chain.py (the contracts)."""
