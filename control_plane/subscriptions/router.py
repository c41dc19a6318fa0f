from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from control_plane.auth.dependencies import WalletPrincipal
from control_plane.db import Session
from control_plane.dependencies import ServicesDep, check_page_limit
from control_plane.errors import (
    ChainUnavailable,
    Forbidden,
    Invalid,
    Unauthorized,
    error_response,
)
from control_plane.subscriptions.schemas import SubscriptionOut
from control_plane.subscriptions.service import subscription_status

router = APIRouter(tags=["subscriptions"])


@router.get(
    "/me/subscription",
    response_model=SubscriptionOut,
    responses={
        401: error_response("no or an invalid token", Unauthorized, "missing bearer token"),
        403: error_response("a node token", Forbidden, "a wallet's token is needed"),
        422: error_response("a bad page", Invalid, "limit must be at most 100"),
        503: error_response(
            "the chain is unreachable (Retry-After)",
            ChainUnavailable,
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
