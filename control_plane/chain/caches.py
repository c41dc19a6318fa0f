"""Caches the app (or a job runner) holds on its `Services`: never module globals, so two apps
in one process (tests, replicas) never share a read, and a reorg is forgotten by its owner."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Final

from control_plane.errors import ChainUnavailable

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from control_plane.chain.client import ChainReader

MAX_CACHED_EXPIRIES: Final = 10_000


class ChainReadCache:
    """Recent reads of `expiresAt(address)` (positive ones only) and `pricePerPeriod()`, each
    with its read time."""

    def __init__(self, max_expiries: int = MAX_CACHED_EXPIRIES) -> None:
        self.max_expiries = max_expiries
        self._expiries: dict[tuple[int, str], tuple[float, int]] = {}
        self._prices: dict[int, tuple[float, int]] = {}
        self._genesis: tuple[float, str] | None = None
        # The genesis this process last checked the mirror's identity against, and whether the
        # indexer may go on with it: checked once per genesis (a refusal logged once), not on
        # every indexer run.
        self.identity_verdict: tuple[str, bool] | None = None

    async def expiry(self, chain: ChainReader, address: str, max_age: float, *, now: float) -> int:
        """`expiresAt(address)` in unix seconds (0 if never paid). Only a positive answer is
        cached: a read is reused while it is at most `max_age` seconds old and still says
        active at `now` (unix seconds, the chain-aware clock); "never paid" or "lapsed" is
        always read afresh and never kept, so a wallet that has just paid is never told it has
        not (issue 11: a cached "never paid" held a paying wallet back for `max_age`)."""
        key = (chain.chain_id, address.lower())
        cached = self._expiries.get(key)
        read_at = time.monotonic()
        if cached is not None and read_at - cached[0] < max_age and cached[1] > now:
            return cached[1]
        expiry = await chain.subscription_expiry(address)
        if expiry <= now:
            self._expiries.pop(key, None)
            return expiry
        if len(self._expiries) >= self.max_expiries:  # wallets are free to make: stay bounded
            self._expiries.clear()
        self._expiries[key] = (read_at, expiry)
        return expiry

    async def price(self, chain: ChainReader, max_age: float) -> int:
        """`pricePerPeriod()` in NDS wei, at most `max_age` seconds old (older while the chain
        is unreachable, if it was ever read)."""
        cached = self._prices.get(chain.chain_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        try:
            price = await chain.price_per_period()
        except ChainUnavailable:
            if cached is None:
                raise
            return cached[1]  # prices change rarely (a governance vote): the last one stands
        self._prices[chain.chain_id] = (now, price)
        return price

    async def genesis_hash(self, chain: ChainReader, max_age: float) -> str:
        """Block 0's hash, read at most every `max_age` seconds: a restarted dev chain has a
        new one, so the indexer re-checks the mirror's chain identity with it."""
        now = time.monotonic()
        if self._genesis is not None and now - self._genesis[0] < max_age:
            return self._genesis[1]
        genesis = (await chain.block_hash(0)).lower()
        self._genesis = (now, genesis)
        return genesis

    def forget_expiries(self) -> None:
        """After a reorg, a cached read may describe a chain that no longer exists."""
        self._expiries.clear()


class KeystoreCache:
    """Decrypted keystores by (resolved path, modification time): a keystore's KDF takes about
    a second, so it is decrypted once per file version."""

    def __init__(self) -> None:
        self._accounts: dict[tuple[str, int], LocalAccount] = {}

    def get(self, key: tuple[str, int]) -> LocalAccount | None:
        return self._accounts.get(key)

    def put(self, key: tuple[str, int], account: LocalAccount) -> None:
        self._accounts[key] = account
