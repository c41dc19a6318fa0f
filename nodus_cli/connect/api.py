"""The subscriber's calls `nodus up` makes, over the shared session (support/session.py: SIWE
sign-in with a cached token, renewal, and the API's errors as exit codes 3 and 4)."""

from __future__ import annotations

from typing import Any

from nodus_cli.support.session import ApiSession


class SubscriberApi:
    def __init__(self, session: ApiSession) -> None:
        self.session = session

    async def subscription(self) -> dict[str, Any]:
        return await self.session.get("/v1/me/subscription")

    async def node(self, node_id: str) -> dict[str, Any]:
        return await self.session.get(f"/v1/nodes/{node_id}", auth=False)

    async def issue_config(self, body: dict[str, str]) -> dict[str, Any]:
        return await self.session.post("/v1/configs", dict(body))
