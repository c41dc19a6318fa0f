"""CRL freshness: when to re-fetch the CRL and how loud to get as its nextUpdate nears."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from node_agent.backends.openvpn.material import CrlInfo
from node_agent.client import MATERIAL_PATH
from node_agent.config import CrlPolicy

log = logging.getLogger("nodus.agent.openvpn")


class CrlLevel(IntEnum):
    OK = 0
    WARNING = 1  # within `warn_before` of nextUpdate
    CRITICAL = 2  # within `critical_before`: every client is about to be locked out
    EXPIRED = 3  # OpenVPN refuses every client now
    MISSING = 4  # no CRL yet: the server cannot start


@dataclass(frozen=True, slots=True)
class CrlDecision:
    level: CrlLevel
    refresh_due: bool
    remaining: timedelta | None  # until nextUpdate (negative once expired)


def crl_decision(
    policy: CrlPolicy,
    now: datetime,
    crl: CrlInfo | None,
    fetched_at: datetime | None,
    retry_at: datetime | None,
) -> CrlDecision:
    """Whether to fetch a fresh CRL now, and how worried to be. `fetched_at` is the last
    successful fetch; `retry_at` is set while backing off after failures (no fetch before it).
    A CRL is re-fetched every `refresh_interval`, and once `refresh_fraction` of its lifetime
    has passed (at most every `min_refetch`), so it never comes near its nextUpdate while the
    control plane answers."""
    if crl is None:
        return CrlDecision(CrlLevel.MISSING, retry_at is None or now >= retry_at, None)
    remaining = crl.next_update - now
    lifetime = crl.next_update - crl.last_update
    if remaining <= timedelta(0):
        level = CrlLevel.EXPIRED
    elif remaining <= min(policy.critical_before, lifetime * 0.1):
        level = CrlLevel.CRITICAL
    elif remaining <= min(policy.warn_before, lifetime * 0.3):
        level = CrlLevel.WARNING
    else:
        level = CrlLevel.OK
    if retry_at is not None:
        return CrlDecision(level, now >= retry_at, remaining)
    if fetched_at is None:
        return CrlDecision(level, True, remaining)
    since = now - fetched_at
    aged = now >= crl.last_update + lifetime * policy.refresh_fraction
    due = since >= policy.refresh_interval or (aged and since >= policy.min_refetch)
    return CrlDecision(level, due, remaining)


def retry_delay(policy: CrlPolicy, failures: int, level: CrlLevel) -> timedelta:
    """Exponential backoff after `failures` failed fetches in a row (before jitter); capped
    lower when the CRL is close to expiring, or missing."""
    cap = policy.retry_max_critical if level >= CrlLevel.CRITICAL else policy.retry_max
    exponent = min(max(failures - 1, 0), 20)
    return min(policy.retry_min * (1 << exponent), cap)


class CrlAlarm:
    """Gets loud about a CRL nearing expiry without flooding the log."""

    def __init__(self) -> None:
        self._last: tuple[CrlLevel, float] = (CrlLevel.OK, 0.0)

    def sound(self, decision: CrlDecision, last_error: str | None) -> None:
        """Logs the CRL's state when it is not OK: on every change of level, then every 10
        minutes (warning) or every minute (critical, expired, missing)."""
        level = decision.level
        previous, at = self._last
        every = 600.0 if level == CrlLevel.WARNING else 60.0
        if level == CrlLevel.OK:
            if previous != CrlLevel.OK:
                log.info("OpenVPN CRL fresh again (next update in %s)", decision.remaining)
                self._last = (level, time.monotonic())
            return
        if level == previous and time.monotonic() - at < every:
            return
        self._last = (level, time.monotonic())
        if level == CrlLevel.MISSING:
            log.critical("OpenVPN has no CRL yet (control plane unreachable?): it cannot start")
        elif level == CrlLevel.EXPIRED:
            log.critical(
                "OpenVPN CRL EXPIRED %s ago: OpenVPN refuses EVERY client until the control plane "
                "answers GET %s",
                -decision.remaining if decision.remaining is not None else "?",
                MATERIAL_PATH,
            )
        elif level == CrlLevel.CRITICAL:
            log.error(
                "OpenVPN CRL expires in %s: every client will be locked out then; the control "
                "plane has not answered (%s)",
                decision.remaining,
                last_error,
            )
        else:
            log.warning(
                "OpenVPN CRL expires in %s and could not be refreshed (%s)",
                decision.remaining,
                last_error,
            )
