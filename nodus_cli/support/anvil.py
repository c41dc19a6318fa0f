"""`--advance-time`: anvil's clock moved by the CLI on a local chain, refused on any other.
(It talks to anvil's RPC like the user's own node; the test launcher lives in tests/support.)"""

from __future__ import annotations

from nodus_cli.support.chain import LOCAL_CHAIN_ID, Chain, rpc
from nodus_cli.support.output import CliError, UsageError, duration, err_console


def require_local(chain: Chain, what: str = "--advance-time") -> None:
    if not chain.is_local:
        raise UsageError(
            f"{what} moves anvil's clock and works only on a local chain (chain id "
            f"{LOCAL_CHAIN_ID}); the chain at {chain.rpc_url} has chain id {chain.chain_id}"
        )


async def advance_to(chain: Chain, timestamp: int, why: str) -> None:
    """Moves anvil's clock until the latest block's timestamp is at least `timestamp`
    (evm_increaseTime + evm_mine), so the next transaction runs at or after it."""
    require_local(chain)
    now = await chain.now()
    if now >= timestamp:
        return
    for _ in range(3):
        delta = timestamp - now
        for method, params in (("evm_increaseTime", [delta]), ("evm_mine", [])):
            response = await rpc(chain, chain.w3.provider.make_request(method, params))
            if "error" in response:
                raise CliError(f"{method} failed: {response['error']}")
        now = await chain.now()
        if now >= timestamp:
            err_console.print(f"[dim]advanced the local clock by {duration(delta)} ({why})[/dim]")
            return
    raise CliError(f"could not move the local clock to {timestamp} (now {now})")
