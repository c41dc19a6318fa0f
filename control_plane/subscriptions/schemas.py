from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from control_plane.patterns import ADDRESS, HASH32, WEI

PaymentStatus = Literal["pending", "confirmed"]

_PAYMENT_EXAMPLE: dict[str, Any] = {
    "tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060",
    "log_index": 1,
    "block_number": 1234,
    "months": 3,
    "amount": "30000000000000000000",
    "status": "confirmed",
}


class PaymentOut(BaseModel):
    """One on-chain payment (a `Subscribed` event). Amounts are decimal strings of NDS wei."""

    model_config = ConfigDict(json_schema_extra={"example": _PAYMENT_EXAMPLE})

    tx_hash: str = Field(pattern=HASH32)
    log_index: int
    block_number: int
    months: int
    amount: str = Field(pattern=WEI, description="NDS wei, as a decimal string (exact)")
    status: PaymentStatus = Field(
        description="`pending` until `confirmations` blocks are mined on top of the payment's "
        "block, then `confirmed`"
    )


class SubscriptionOut(BaseModel):
    """The caller's subscription: expiry and price read from the chain, payments as indexed."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "address": "0x70997970c51812dc3a010c7d01b50e0d17dc79c8",
                "active": True,
                "expires_at": "2026-09-01T12:00:00Z",
                "price_per_period": "10000000000000000000",
                "payments": [_PAYMENT_EXAMPLE],
            }
        }
    )

    address: str = Field(pattern=ADDRESS)
    active: bool
    expires_at: datetime | None = Field(description="null if the address never paid")
    price_per_period: str = Field(
        pattern=WEI, description="NDS wei per 30-day period, as a decimal string"
    )
    payments: list[PaymentOut] = Field(description="newest first, one page")
