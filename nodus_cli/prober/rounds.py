"""`nodus prober address | run`: run an independent prober with its own key.

Each round it fetches the targets from the control plane (`GET /v1/probes/targets`), probes
every node's health endpoint a few times (an answer counts only if the node's agent signed it
for the prober's nonce: proof of service, see probe.py), signs each sample with its key and
posts them
(`POST /v1/probes`). The control plane counts the samples only if an admin allow-listed the
prober's address (`PUT /v1/probers/{address}`). Samples that could not be posted are kept and
posted again next round (while they are recent enough to be accepted).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import httpx
import typer
from rich.console import Console

from nodus_cli.support.exits import ExitCode

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from control_plane.prober.settings import ProberSettings

console = Console()

# Samples kept for a retry after a failed post, at most.
MAX_PENDING = 50_000
# Samples per POST: a worst-case sample is under 500 bytes of JSON, so a post stays below the
# control plane's default 64 KiB body limit.
POST_CHUNK = 100


class ProberRejected(Exception):
    """The control plane refused the samples (not allow-listed, bad signature, too old)."""


@dataclass
class ProberState:
    """What a running prober keeps between rounds: samples not yet accepted."""

    pending: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    round: int
    probed: int
    answered: int
    accepted: int
    duplicates: int
    pending: int


def _account(key: str | None) -> LocalAccount:
    from eth_account import Account

    if not key:
        console.print("[red]error:[/red] set the prober's key: --key or NODUS_PROBER_KEY")
        raise typer.Exit(code=ExitCode.USAGE)
    try:
        account: LocalAccount = Account.from_key(key)
    except (ValueError, TypeError) as exc:
        console.print("[red]error:[/red] the key is not a secp256k1 private key (0x-hex)")
        raise typer.Exit(code=ExitCode.USAGE) from exc
    return account


async def _post(http: httpx.AsyncClient, samples: list[dict[str, Any]]) -> tuple[int, int]:
    accepted = duplicates = 0
    for start in range(0, len(samples), POST_CHUNK):
        response = await http.post(
            "/v1/probes", json={"samples": samples[start : start + POST_CHUNK]}
        )
        if response.status_code in (401, 403, 422):
            raise ProberRejected(response.json().get("error", {}).get("message", response.text))
        response.raise_for_status()
        body = response.json()
        accepted += int(body["accepted"])
        duplicates += int(body["duplicates"])
    return accepted, duplicates


async def run_once(
    http: httpx.AsyncClient,
    account: LocalAccount,
    settings: ProberSettings,
    state: ProberState | None = None,
    *,
    now: int | None = None,
) -> RoundOutcome:
    """One round against the control plane behind `http` (its base URL set)."""
    from control_plane.prober.probe import Target, probe_all
    from control_plane.prober.signing import Sample, sign_sample

    state = state if state is not None else ProberState()
    response = await http.get("/v1/probes/targets")
    response.raise_for_status()
    body = response.json()
    chain_id = int(body["chain_id"])
    targets = [Target(t["node_id"], t["url"], t["agent"]) for t in body["targets"]]
    round_at = int(time.time()) if now is None else now
    results = await probe_all(
        targets,
        attempts=settings.samples,
        request_timeout=settings.timeout_seconds,
        concurrency=settings.concurrency,
        allow_private=settings.allow_private_targets,
    )
    address = account.address.lower()
    fresh: list[dict[str, Any]] = []
    for node_id, result in sorted(results.items()):
        sample = Sample(address, node_id, round_at, result.attempts, result.rtt_us, result.error)
        fresh.append(
            {
                "prober": address,
                "node_id": node_id,
                "round": round_at,
                "attempts": result.attempts,
                "rtt_us": list(result.rtt_us),
                "error": result.error,
                "signature": sign_sample(account, sample, chain_id),
            }
        )
    oldest = round_at - settings.max_sample_age_seconds + 60
    batch = [s for s in state.pending if s["round"] >= oldest] + fresh
    try:
        accepted, duplicates = await _post(http, batch)
    except httpx.HTTPError:
        state.pending = batch[-MAX_PENDING:]
        raise
    state.pending = []
    return RoundOutcome(
        round=round_at,
        probed=len(fresh),
        answered=sum(1 for s in fresh if s["rtt_us"]),
        accepted=accepted,
        duplicates=duplicates,
        pending=0,
    )


async def _loop(url: str, account: LocalAccount, settings: ProberSettings, once: bool) -> None:

    state = ProberState()
    async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as http:
        while True:
            started = time.monotonic()
            try:
                outcome = await run_once(http, account, settings, state)
            except ProberRejected as exc:
                console.print(f"[red]rejected:[/red] {exc}")
                console.print(
                    f"an admin allow-lists this prober with PUT /v1/probers/{account.address}"
                )
                raise typer.Exit(code=ExitCode.REFUSED) from exc
            except httpx.HTTPError as exc:
                console.print(
                    f"[yellow]round failed:[/yellow] {type(exc).__name__}: {exc} "
                    f"({len(state.pending)} samples kept for the next round)"
                )
                if once:
                    raise typer.Exit(code=ExitCode.REFUSED) from exc
            else:
                console.print(
                    f"round {outcome.round}: probed {outcome.probed}, answered "
                    f"{outcome.answered}, accepted {outcome.accepted}, duplicates "
                    f"{outcome.duplicates}"
                )
            if once:
                return
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, settings.interval_seconds - elapsed))


def address(
    key: Annotated[
        str | None, typer.Option(envvar="NODUS_PROBER_KEY", help="the prober's private key")
    ] = None,
) -> None:
    """Print the prober's address (what an admin allow-lists)."""
    console.print(_account(key).address.lower())


def run(
    key: Annotated[
        str | None, typer.Option(envvar="NODUS_PROBER_KEY", help="the prober's private key")
    ] = None,
    control_plane_url: Annotated[
        str, typer.Option(envvar="NODUS_PROBER_CONTROL_PLANE_URL")
    ] = "http://127.0.0.1:8000",
    interval: Annotated[float, typer.Option(min=1, help="seconds between rounds")] = 60.0,
    samples: Annotated[int, typer.Option(min=1, max=10, help="requests per node")] = 3,
    timeout: Annotated[float, typer.Option(min=0.1, max=30, help="seconds per request")] = 3.0,
    concurrency: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    allow_private_targets: Annotated[
        bool,
        typer.Option(
            envvar="NODUS_PROBER_ALLOW_PRIVATE_TARGETS",
            help="probe private and loopback addresses (a LAN or a dev stack)",
        ),
    ] = False,
    once: Annotated[bool, typer.Option(help="one round, then exit")] = False,
) -> None:
    """Probe every node each round and post the signed samples to the control plane."""
    from control_plane.prober.settings import ProberSettings

    account = _account(key)
    settings = ProberSettings(
        interval_seconds=interval,
        samples=samples,
        timeout_seconds=timeout,
        concurrency=concurrency,
        allow_private_targets=allow_private_targets,
        control_plane_url=control_plane_url,
    )
    console.print(f"prober {account.address.lower()} -> {control_plane_url}")
    try:
        asyncio.run(_loop(control_plane_url.rstrip("/"), account, settings, once))
    except KeyboardInterrupt:
        console.print("stopped")
