"""The agent's most frequent request answered before FastAPI routes it: an unchanged poll
(`GET /v1/agent/peers?since=<the current revision>&wait=0`, or without `wait`) is a lookup of
an already verified token, of its node in the chain mirror's snapshot (auth/node_credentials.py),
and a compare with the feed's in-memory revision. No session, no query, no dependency resolution.

Anything else falls through to the route, which answers as it always did: a token this replica
has not verified yet (the route verifies and remembers it), a snapshot that is due, a feed
that is not live, a revision that moved, `wait` > 0, `node_id`, any other parameter or any
malformed one. The answer's bytes are the route's own (`PeerSet` with `changed: false`)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.agent.schemas import PeerSet
from control_plane.auth.principal import Role

PATH = "/v1/agent/peers"


@dataclass(frozen=True)
class _RouteLabel:
    path: str


ROUTE = _RouteLabel(PATH)
MAX_SINCE_DIGITS = 19  # INT64_MAX has 19 digits; longer ones go to the route (a 422)


def _since(query: bytes) -> int | None:
    """`since` from a query that is exactly `since=<digits>` and optionally `wait=0`."""
    since: int | None = None
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"since" and since is None and value.isdigit():
            if len(value) > MAX_SINCE_DIGITS:
                return None
            since = int(value)
        elif not (name == b"wait" and value == b"0"):
            return None
    return since


class UnchangedPollShortcut:
    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: feed, verified tokens, node credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = self._unchanged(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE  # the metrics label it as the route's own requests
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _unchanged(self, scope: Scope) -> bytes | None:
        """The answer when this is an unchanged poll this replica can vouch for, else None."""
        if scope["path"] != PATH or scope["method"] != "GET":
            return None
        since = _since(scope["query_string"])
        if since is None:
            return None
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, credential = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    token = credential
                break
        feed = getattr(self.state, "feed", None)
        tokens = getattr(self.state, "verified_tokens", None)
        credentials = getattr(self.state, "node_credentials", None)
        if token is None or feed is None or tokens is None or credentials is None or feed.closing:
            return None
        principal = tokens.known(token)
        if principal is None or principal.node_id is None or not principal.has(Role.NODE):
            return None
        if not credentials.fresh():
            return None  # the chain mirror's snapshot is due: the route reads it
        if credentials.refusal(principal.node_id, principal.agent) is not None:
            return None  # the route answers the 401 with its reason
        if feed.revision(principal.node_id.lower()) != since:
            return None
        return PeerSet(revision=since, changed=False, peers=None).model_dump_json().encode()
