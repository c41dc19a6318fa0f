from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from control_plane.auth.dependencies import WalletPrincipal
from control_plane.db import Session
from control_plane.dependencies import ServicesDep, check_page_limit
from control_plane.errors import error_body
from control_plane.subscriptions.schemas import SubscriptionOut
from control_plane.subscriptions.service import subscription_status

router = APIRouter(tags=["subscriptions"])


def _error(description: str, code: str, message: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"example": error_body(code, message)}},
    }


@router.get(
    "/me/subscription",
    response_model=SubscriptionOut,
    responses={
        401: _error("no or an invalid token", "unauthorized", "missing bearer token"),
        403: _error("a node token", "forbidden", "a wallet's token is needed"),
        422: _error("a bad page", "invalid", "limit must be at most 100"),
        503: _error(
            "the chain is unreachable (Retry-After)",
            "chain_unavailable",
            "the chain RPC is unreachable; retry shortly",
        ),
    },
)
async def get_my_subscription(
    principal: WalletPrincipal,
    session: Session,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, description="payments per page")] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="payments to skip")] = 0,
) -> SubscriptionOut:
    """The caller's on-chain subscription: whether it is active, its expiry and the price per
    30-day period (read from the contract), and its payments, newest first."""
    # WalletPrincipal refused a node agent's token already (403).
    settings = services.settings
    check_page_limit(limit, settings)
    return await subscription_status(
        session, services, principal.address, limit=limit, offset=offset
    )
