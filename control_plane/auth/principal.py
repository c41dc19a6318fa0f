"""Who is calling: a wallet (with roles) or a node agent. Built from a JWT or an API key."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    SUBSCRIBER = "subscriber"  # any signed-in wallet
    OPERATOR = "operator"  # operator of a node Active on-chain
    ADMIN = "admin"  # a configured address
    NODE = "node"  # a node agent, scoped to one node


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. `address` is a lower-case 0x wallet address for wallets and
    API keys; `node_id` is set only for node-agent tokens."""

    subject: str
    roles: frozenset[Role]
    node_id: str | None = None
    # Node tokens: the on-chain agent key that signed in (lower-case); the token dies with it.
    agent: str | None = None

    @property
    def address(self) -> str:
        return self.subject

    def has(self, role: Role) -> bool:
        return role in self.roles
