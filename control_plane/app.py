"""The FastAPI application: `create_app(settings)` wires routers, errors, observability, the
database, the chain reader and the jobs. Nothing connects at import time."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from control_plane import __version__
from control_plane.agent.feed import PeerFeed
from control_plane.agent.openvpn_router import router as openvpn_router
from control_plane.agent.router import router as agent_router
from control_plane.agent.unchanged_poll import UnchangedPollShortcut
from control_plane.auth.node_credentials import NodeCredentials
from control_plane.auth.router import router as auth_router
from control_plane.auth.tokens import VerifiedTokens
from control_plane.body_limit import BodyLimitMiddleware
from control_plane.chain.client import ChainReader, Web3ChainReader
from control_plane.chain.contracts import Deployment
from control_plane.configs.router import router as configs_router
from control_plane.db import DatabaseTimeouts, make_engine, make_sessionmaker
from control_plane.dependencies import ChainDep
from control_plane.error_handlers import install_error_handlers
from control_plane.gc_policy import collect_periodically, take_over_full_collections
from control_plane.indexer.identity import ensure_chain_identity
from control_plane.instruments import Metrics
from control_plane.jobs import Job, Services, start_scheduler
from control_plane.logging_setup import configure_logging
from control_plane.nodes.router import router as nodes_router
from control_plane.observability import ObservabilityMiddleware
from control_plane.openapi import install_openapi
from control_plane.prober.router import router as prober_router
from control_plane.proxies import TrustedProxiesMiddleware, parse_trusted_proxies
from control_plane.rewards.claims_router import router as rewards_claims_router
from control_plane.rewards.health_router import router as rewards_health_router
from control_plane.rewards.router import router as rewards_router
from control_plane.settings import Settings
from control_plane.state_metrics.collector import StateMetrics
from control_plane.subscriptions.router import router as subscriptions_router
from control_plane.tracing import build_tracer_provider, trace_engine, tracer_of

API_PREFIX = "/v1"
API_ROUTERS = (
    auth_router,
    subscriptions_router,
    nodes_router,
    configs_router,
    agent_router,
    openvpn_router,
    prober_router,
    rewards_router,
    rewards_claims_router,
    rewards_health_router,
)


def scheduled_jobs(settings: Settings) -> dict[str, tuple[float, Job]]:
    """Every background job and its interval (filled in by the domains that own jobs)."""
    from control_plane.indexer.sync import sync_chain
    from control_plane.prober.service import probe_round
    from control_plane.rewards.posting.epoch_job import reward_epoch_job
    from control_plane.rewards.posting.publisher import posting_jobs
    from control_plane.subscriptions.expiry import expire_lapsed

    jobs: dict[str, tuple[float, Job]] = {
        "chain_sync": (settings.chain_sync_interval_seconds, sync_chain),
        "expiry": (settings.expiry_interval_seconds, expire_lapsed),
    }
    prober = settings.prober
    if prober.enabled:
        jobs["probe_round"] = (prober.interval_seconds, probe_round)
    posting = posting_jobs(settings)  # empty on a replica without the oracle key
    if posting:
        jobs.update(posting)
        jobs["reward_epoch"] = (
            settings.reward_posting.reward_epoch_interval_seconds,
            reward_epoch_job,
        )
    return jobs


def create_app(
    settings: Settings,
    chain: ChainReader | None = None,
    tracer_provider: TracerProvider | None = None,
    gc_full_collection_seconds: float = 0,
) -> FastAPI:
    """The application. `chain` replaces the JSON-RPC reader (tests pass one bound to anvil);
    `tracer_provider` turns traces on (control_plane/tracing.py), None leaves them off;
    `gc_full_collection_seconds` > 0 runs the timer of control_plane/gc_policy.py (only a
    process that took over its full collections, as `build_from_env` does)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, database_timeouts(settings))
        app.state.engine = engine
        if tracer_provider is not None:
            trace_engine(engine, tracer_provider)
        app.state.sessions = make_sessionmaker(engine)
        owned_reader: Web3ChainReader | None = None
        reader = chain
        deployment = Deployment.for_chain(settings.chain_id, settings.deployments_dir)
        if reader is None:
            reader = owned_reader = Web3ChainReader.connect(
                settings.rpc_url, deployment, settings.rpc_timeout_seconds
            )
        # Before anything reads the mirror: it must describe this chain and deployment.
        await ensure_chain_identity(
            app.state.sessions, reader, deployment, settings.on_chain_change
        )
        tracer = tracer_of(tracer_provider)
        if isinstance(reader, Web3ChainReader):
            reader.observe(metrics, tracer)
        # The runtime context: API dependencies (control_plane/dependencies.py) and the jobs
        # take everything from it; it owns the process's caches.
        app.state.services = Services(
            settings, app.state.sessions, reader, tracer=tracer, metrics=metrics
        )
        app.state.state_metrics = StateMetrics(app.state.services)
        # The clock's first lead in line, so the first requests judge expiry by the chain's time.
        await app.state.services.clock.now(reader, 0)
        scheduler = (
            start_scheduler(app.state.services, scheduled_jobs(settings))
            if settings.run_jobs
            else None
        )
        app.state.feed = await PeerFeed.start(settings.database_url, app.state.sessions)
        app.state.feed.on_waiting = metrics.longpolls_parked.set
        metrics.longpolls_parked.set(0)
        metrics.longpolls_capacity.set(app.state.feed.max_waiters)
        metrics.watch_pool(engine.sync_engine.pool)
        restore_signals = _release_polls_on_signal(app.state.feed)
        collector = None
        if gc_full_collection_seconds > 0:
            collector = asyncio.create_task(collect_periodically(gc_full_collection_seconds))
        try:
            yield
        finally:
            if collector is not None:
                collector.cancel()
            restore_signals()
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            await app.state.feed.stop()
            await app.state.services.clock.aclose()
            await engine.dispose()
            if owned_reader is not None:
                await owned_reader.aclose()
            if tracer_provider is not None:
                tracer_provider.shutdown()  # flushes the batch exporter
            metrics.process_exited()

    app = FastAPI(
        title="Nodus control plane",
        version=__version__,
        lifespan=lifespan,
        description="A decentralized VPN paid on-chain. Errors are always "
        '`{"error": {"code", "message"}}`.',
    )
    app.state.settings = settings
    # This app's Prometheus instruments and registry (control_plane/instruments.py).
    metrics = Metrics()
    app.state.metrics = metrics
    install_error_handlers(app)
    install_openapi(app)
    # Per-replica caches of the node agents' credentials (auth/dependencies.py), which the
    # unchanged-poll shortcut reads too.
    app.state.verified_tokens = VerifiedTokens()
    app.state.node_credentials = NodeCredentials(settings.node_token_recheck_seconds)
    app.add_middleware(UnchangedPollShortcut, state=app.state)
    _install_observability(app, metrics, api_route_templates())
    if tracer_provider is not None:
        # Outside the request-id/log middleware, so its log lines carry the trace id.
        # No span per ASGI receive/send message: three spans a request cost more than the
        # cheapest routes themselves and say nothing the server span does not.
        app.add_middleware(
            OpenTelemetryMiddleware,
            tracer_provider=tracer_provider,
            exclude_spans=["receive", "send"],
        )
    app.add_middleware(BodyLimitMiddleware)
    # Outermost: every later layer (rate limits, logs) sees the client, not the proxy.
    app.add_middleware(
        TrustedProxiesMiddleware, trusted=parse_trusted_proxies(settings.trusted_proxies)
    )

    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive (touches nothing)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "not ready"}})
    async def readyz(request: Request, chain: ChainDep) -> JSONResponse:
        """The database and the chain RPC both answer (within NODUS_READYZ_TIMEOUT_SECONDS)."""
        bound = settings.readyz_timeout_seconds
        database, chain_ok = await asyncio.gather(
            _within(bound, _database_ok(request)), _within(bound, chain.ping())
        )
        checks = {"database": database, "chain": chain_ok}
        ready = all(checks.values())
        body = {"status": "ok" if ready else "unavailable", "checks": checks}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


def _release_polls_on_signal(feed: PeerFeed) -> Callable[[], None]:
    """Chains onto the server's SIGTERM/SIGINT handler (uvicorn's, installed before the
    lifespan starts) so parked long-polls are released the moment the signal arrives: the
    server drains every open connection before it runs the lifespan's shutdown, and a poll
    parked for a minute would hold the exit that long. Returns the function that restores the
    server's handlers. Without a server handler (tests, a plain asyncio loop) nothing is hooked."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    hooked: dict[signal.Signals, Callable[[int, FrameType | None], Any]] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous) or previous is signal.default_int_handler:
            continue

        def handler(
            signum: int,
            frame: FrameType | None,
            previous: Callable[[int, FrameType | None], Any] = previous,
        ) -> None:
            loop.call_soon_threadsafe(feed.begin_closing)
            previous(signum, frame)

        signal.signal(sig, handler)
        hooked[sig] = previous

    def restore() -> None:
        for sig, previous in hooked.items():
            signal.signal(sig, previous)

    return restore


def database_timeouts(settings: Settings) -> DatabaseTimeouts:
    return DatabaseTimeouts(
        connect_seconds=settings.database_connect_timeout_seconds,
        pool_seconds=settings.database_pool_timeout_seconds,
        statement_seconds=settings.database_statement_timeout_seconds,
    )


async def _within(seconds: float, check: Awaitable[bool]) -> bool:
    try:
        return await asyncio.wait_for(check, seconds)
    except TimeoutError:
        return False


async def _database_ok(request: Request) -> bool:
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def api_route_templates() -> dict[int, str]:
    """The full path template of each API route (`/v1/configs/{config_id}`) by the route's
    id(), for the route label of /metrics: FastAPI keeps an included router nested, and its
    routes know only their path inside it."""
    return {
        id(route): API_PREFIX + route.path
        for router in API_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    }


def _install_observability(app: FastAPI, metrics: Metrics, route_templates: dict[int, str]) -> None:
    app.add_middleware(
        ObservabilityMiddleware, registry=metrics.registry, route_templates=route_templates
    )

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    async def metrics_page(request: Request) -> Response:
        """The domain state is read (async) first; rendering then only formats
        (control_plane/state_metrics/collector.py). With several workers the process-local
        instruments are every worker's, summed (control_plane/instruments.py)."""
        state = request.app.state
        services: Services = state.services
        if isinstance(services.chain, Web3ChainReader):
            services.chain.publish_breaker_state()
        await state.state_metrics.refresh()
        body = metrics.render(state.state_metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)


def build_from_env() -> FastAPI:
    """uvicorn factory: `uvicorn --factory control_plane.app:build_from_env`."""
    settings = Settings()  # type: ignore[call-arg]  # required secrets come from the environment
    configure_logging(settings.log_level)
    app = create_app(
        settings,
        tracer_provider=build_tracer_provider(os.environ),
        gc_full_collection_seconds=settings.gc_full_collection_seconds,
    )
    if settings.gc_full_collection_seconds > 0:
        take_over_full_collections()  # after create_app: the app's own objects are frozen too
    return app
