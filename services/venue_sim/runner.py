"""venue-sim's runner: load the recording, build the engine, serve Lighter's API, replay.

With ``source: live`` the recording is replaced by an upstream Lighter feed
(:mod:`services.venue_sim.live`): the markets come from the upstream's ``orderBookDetails``
(:func:`upstream_markets`, retried; ``/health`` says degraded meanwhile).

``main(cfg)`` runs until SIGTERM/SIGINT. :func:`build` assembles the same pieces for tests
(returns the server, the replay and the aiohttp app without binding a port). With
``lockstep: true`` the replay is gated by :class:`services.venue_sim.lockstep.QuietGate` on the
stack's Redis and namespace. With ``state_path`` the venue continues from its state file and
keeps it written (:mod:`services.venue_sim.state`); ``POST /sim/fault/once {"kind":"restart"}``
then makes :func:`serve` stop and start again from it on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from services.venue_sim.audit import AuditLog
from services.venue_sim.config import VenueSimConfig, resolve_path
from services.venue_sim.live import LiveFeed
from services.venue_sim.lockstep import QuietGate
from services.venue_sim.replay import Replay, count_events
from services.venue_sim.server import VenueServer
from services.venue_sim.state import (
    StateStore,
    check_fingerprint,
    fingerprint,
    persisting_sink,
    read_state,
    restore_server,
    snapshot,
)
from shared.config import StackConfig
from shared.lighter_ws.metadata import Backoff, MarketMetadataError, fetch_markets
from shared.markets import MarketInfo
from shared.recording import read_recording
from shared.redis_util import async_client, resolve_redis_url
from shared.service import install_stop_handlers, setup_logging
from shared.venue.matching import MatchingEngine

log = logging.getLogger("venue-sim")


def build(cfg: VenueSimConfig, account_index: int = 1001, redis: Any = None,
          namespace: str = "paper", live_markets: Iterable[MarketInfo] | None = None,
          ) -> tuple[VenueServer, Replay | LiveFeed, web.Application]:
    """Open the recording (or prepare the live source) and wire engine, server and replay
    (must run inside an event loop).

    Args:
        cfg: the venue-sim section.
        account_index: the stack's account (for ``start_when_subscribed``).
        redis: an asyncio Redis client; required with ``cfg.lockstep`` (the quiet gate reads the
            consumer groups of ``namespace``).
        namespace: the stack's stream namespace.
        live_markets: with ``source: live``, the followed markets as the upstream lists them
            (:func:`upstream_markets`); then the "replay" is a
            :class:`~services.venue_sim.live.LiveFeed`.

    Raises:
        shared.recording.RecordingError: the recording is missing or invalid.
        services.venue_sim.state.StateError: ``state_path`` names a file that cannot be used.
        ValueError: ``lockstep`` without a Redis client; ``source: live`` without
            ``live_markets``.
    """
    live = cfg.source == "live"
    if live:
        if live_markets is None:
            raise ValueError("venue-sim source: live needs the upstream's market metadata (live_markets)")
        markets, events, path, book_depth = list(live_markets), None, None, "top"
    else:
        path = resolve_path(cfg.recording)
        header, events = read_recording(path)
        markets, book_depth = header.markets, header.depth
    depth = cfg.depth.model(cfg.lockstep)
    engine = MatchingEngine(markets, cfg.resolved_tier(), initial_collateral=cfg.initial_collateral,
                            expire_orders=not cfg.lockstep,  # lockstep keeps the backtest's outputs
                            depth=depth)
    saved, fp = None, {}
    if cfg.state_path:
        state_path = resolve_path(cfg.state_path)
        assert path is not None  # the config refuses state_path with source: live
        fp = fingerprint(path, markets, cfg.lockstep, cfg.resolved_public_book(), cfg.resolved_tier(), depth)
        saved = read_state(state_path)
        if saved is not None:
            check_fingerprint(saved, fp, state_path)
            engine = saved["engine"]
    holder: dict[str, Any] = {}

    def on_tx() -> None:
        holder["replay"].notify()
        if server.state_store is not None:
            server.state_store.mark(urgent=True)

    def clock() -> int:
        return holder["replay"].sim_now()

    def status_extra() -> dict[str, Any]:
        r = holder["replay"]
        common = {"state": r.state, "events_replayed": r.replayed, "depth": book_depth, "started": r.started,
                  "public_book": server.public_book, "clock": r.clock, "recorded_time_ns": r.recorded_ns}
        if isinstance(r, LiveFeed):
            up = r.status()
            return {**common, "total_events": None, "source": "live", "upstream": up,
                    "health": "ok" if up["connected"] else "degraded", "lockstep": False}
        return {**common, "total_events": r.total_events, "recording": str(path), "speed": r.speed,
                "lockstep": cfg.lockstep}

    server = VenueServer(
        engine, markets, clock,
        fills_file=resolve_path(cfg.fills_file) if cfg.fills_file else None,
        status_extra=status_extra, on_start=lambda: holder["replay"].start(),
        on_tx=on_tx,
        start_when_subscribed_account=(cfg.account_index if cfg.account_index is not None else account_index)
        if cfg.start_when_subscribed else None,
        market_stats_interval_s=cfg.market_stats_interval_s, recent_trades=cfg.recent_trades,
        public_book=cfg.resolved_public_book(), meter=cfg.meter(), accounts=cfg.resolved_accounts(account_index),
        margin_checks=cfg.resolved_margin_checks(), faults=cfg.faults,
    )
    server.verify_signatures, server.verify_auth, server.chain_id = (
        cfg.verify_signatures, cfg.verify_auth, cfg.chain_id)
    gate = None
    if cfg.lockstep:
        if redis is None:
            raise ValueError("venue-sim lockstep needs Redis (to watch the consumer groups)")
        gate = QuietGate(redis, namespace, lambda: (server.queued_messages(), server.tx_requests),
                         settle_ms=cfg.lockstep_settle_ms, timeout_s=cfg.lockstep_timeout_s).wait
    sink = persisting_sink(server) if cfg.state_path else server.publish
    replay: Replay | LiveFeed
    if live:
        replay = LiveFeed(engine, markets, sink, cfg.upstream_ws_url,
                          reconnect_initial_s=cfg.upstream_reconnect_initial_s,
                          reconnect_max_s=cfg.upstream_reconnect_max_s, timeout_s=cfg.upstream_timeout_s)
    else:
        assert events is not None
        replay = Replay(engine, events, sink, speed=cfg.speed, max_gap_s=cfg.max_gap_s, gate=gate)
    holder["replay"] = replay
    if cfg.state_path:
        restarts = 0
        if saved is not None:
            assert isinstance(replay, Replay)
            restore_server(server, saved)
            replay.resume(saved["replay"]["replayed"], saved["replay"]["recorded_ns"])
            restarts = int(saved.get("restarts", 0)) + 1
            log.info("venue-sim continues from %s (restart %d): %d events replayed, %d fills, %d open orders",
                     state_path, restarts, replay.replayed, len(engine.fills), len(engine.orders))
        store = StateStore(state_path, lambda: snapshot(server, replay, fp, restarts), cfg.state_interval_ms / 1000)
        server.state_store = store
        if saved is not None and saved["replay"]["started"]:
            replay.start()
    server.clock_is_wall = not cfg.lockstep
    server.ws_idle_timeout_s = cfg.ws_idle_timeout_s
    server.ws_max_subscriptions = cfg.ws_max_subscriptions
    server.ws_messages_per_min = cfg.ws_messages_per_min
    if cfg.audit_file:
        server.audit = AuditLog(resolve_path(cfg.audit_file))
    if cfg.autostart:
        replay.start()
    return server, replay, server.app()


async def serve(cfg: VenueSimConfig, account_index: int = 1001, stop: asyncio.Event | None = None,
                redis: Any = None, namespace: str = "paper", symbols: Iterable[str] = ("BTC", "ETH")) -> None:
    """Serve on ``cfg.host:cfg.port`` and replay until ``stop`` is set (``redis``/``namespace``:
    see :func:`build`); a restart fault (``state_path`` set) stops and starts again from the
    state file. ``symbols``: the stack's markets, followed upstream with ``source: live`` unless
    ``cfg.markets`` is set.

    Raises:
        shared.lighter_ws.metadata.MarketMetadataError: ``source: live`` and the upstream does
            not list a followed market.
    """
    stop = stop or asyncio.Event()
    while await _serve_once(cfg, account_index, stop, redis, namespace, symbols) and not stop.is_set():
        log.info("venue-sim restarts from its state file %s", cfg.state_path)


async def upstream_markets(cfg: VenueSimConfig, symbols: Iterable[str], stop: asyncio.Event) -> list[MarketInfo] | None:
    """The followed markets' metadata from the upstream's ``orderBookDetails``, retried with
    backoff until it answers (``source: live``). Meanwhile ``cfg.host:cfg.port`` answers
    ``GET /health`` with 503 ``degraded`` (and nothing else), so an unreachable upstream at
    start is visible and never a crash.

    Returns:
        the markets, or None when ``stop`` was set first.

    Raises:
        MarketMetadataError: the upstream answered without a followed market.
    """
    wanted = list(cfg.markets if cfg.markets is not None else symbols)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "degraded", "service": "venue-sim", "source": "live",
                                  "reason": f"waiting for market metadata from {cfg.upstream_rest_url}"}, status=503)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.host, cfg.port).start()
    try:
        found = await fetch_markets(cfg.upstream_rest_url, wanted, stop,
                                    Backoff(cfg.upstream_reconnect_initial_s, cfg.upstream_reconnect_max_s),
                                    cfg.upstream_timeout_s)
    finally:
        await runner.cleanup()
    return None if found is None else [found[s] for s in wanted]


async def _serve_once(cfg: VenueSimConfig, account_index: int, stop: asyncio.Event, redis: Any,
                      namespace: str, symbols: Iterable[str]) -> bool:
    """One life of the venue: True when it ended for a restart fault."""
    live_markets = None
    if cfg.source == "live":
        live_markets = await upstream_markets(cfg, symbols, stop)
        if live_markets is None:
            return False
    server, replay, app = build(cfg, account_index, redis, namespace, live_markets)
    restart = asyncio.Event()
    server.request_restart = restart.set
    loop = asyncio.get_running_loop()
    path = resolve_path(cfg.recording)
    if isinstance(replay, Replay):
        counter = loop.run_in_executor(None, count_events, path)
        counter.add_done_callback(
            lambda f: setattr(replay, "total_events", f.result() if not f.exception() else None))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, cfg.host, cfg.port).start()
    log.info("venue-sim on http://%s:%d (REST /api/v1, WS /stream); %s; markets %s; state %s",
             cfg.host, cfg.port, f"recording {path}" if isinstance(replay, Replay)
             else f"live market data from {cfg.upstream_ws_url} (orders matched here, never sent upstream)",
             sorted(m.symbol for m in server.markets.values()),
             "running" if replay.started else "waiting for POST /sim/start"
             + (" or subscribers" if cfg.start_when_subscribed else ""))
    task = asyncio.create_task(replay.run())
    store = server.state_store
    writer = asyncio.create_task(store.run()) if store is not None else None
    if store is not None:
        store.save()  # the start (and a restart's count) is on file at once
    ended = [asyncio.create_task(stop.wait()), asyncio.create_task(restart.wait())]
    try:
        await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in ended:
            t.cancel()
        replay.stop()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(task, 5)
        await server.close_clients()
        await runner.cleanup()
        server.close()
        if writer is not None:
            writer.cancel()
        if store is not None:
            store.save()
        log.info("venue-sim stopped: %d events replayed, %d fills", replay.replayed, len(server.engine.fills))
    return restart.is_set()


def main(cfg: StackConfig) -> int:
    """Run venue-sim until SIGTERM/SIGINT; returns the process exit code."""
    setup_logging()
    section = cfg.section("venue-sim", VenueSimConfig)

    async def _run() -> None:
        stop = asyncio.Event()
        install_stop_handlers(stop.set)
        redis = async_client(resolve_redis_url(cfg.redis_url)) if section.lockstep else None
        try:
            await serve(section, cfg.account_index, stop, redis, cfg.ns, cfg.markets)
        finally:
            if redis is not None:
                await redis.aclose()

    try:
        asyncio.run(_run())
    except OSError as exc:
        log.error("venue-sim failed: %s", exc)
        return 1
    except (ValueError, MarketMetadataError) as exc:  # RecordingError, StateError, an unknown upstream market
        log.error("venue-sim cannot start: %s", exc)
        return 2
    return 0
