"""The dev-chain helpers tests use (they live in control_plane.chain.devchain)."""

from control_plane.chain.devchain import (
    ANVIL_MNEMONIC,
    Anvil,
    advance_time,
    deploy,
    dev_account,
    running_anvil,
    send_eth,
    transact,
)

__all__ = [
    "ANVIL_MNEMONIC",
    "Anvil",
    "advance_time",
    "deploy",
    "dev_account",
    "running_anvil",
    "send_eth",
    "transact",
]
