"""Tick-to-order latency through the real processes, next to the raw Redis three-hop floor.

Prints figures, never fails on them (targets: docs/performance.md). Path measured:

    venue-sim applies a book update and sends it (WS)  ->  collector (parse, BookDelta + Bbo on
    {ns}:md:book:BTC)  ->  benchmark strategy (bench/benchkit/tick_strategy.py: a QuoteIntent per
    Bbo on {ns}:intent:1001)  ->  executor (nets, signs, sendTxBatch cancel + create)  ->  venue-sim
    receives the create

Every process is the real one (``lighter-stack run venue-sim|collector|executor``; the strategy is
a few lines on the real strategy consume loop, ``shared.service.EngineRunner``), on a private
Redis (``EmbeddedRedis``). venue-sim replays a synthetic BTC feed written for the run: one BBO
change every ``1/rate`` s at speed 1 (the top alternates between two prices, so every update is
a book change and a ``Bbo``).

Both ends are venue-sim's clock (the wall clock outside lockstep), to the microsecond:

- *tick*: the update's ``last_updated_at``, the wall time venue-sim applied (and then sent) it;
  the collector's ``Bbo.ts_event``, copied by ``child()`` into the intent and by the executor
  into the ``OrderAccepted`` of the order that intent made;
- *order*: the ``transaction_time`` of the order's first ``account_all`` update, read from
  venue-sim's WebSocket by this script. With ``tier: premium`` a post-only order executes at its
  arrival (speed bump 0 ms), so that is the time venue-sim received the ``sendTxBatch``.

Latency = order - tick, per ``OrderAccepted`` (joined by client order index), after a warm-up.
Updates that caused no order are counted: the executor acts once per consumer batch (intents of
one batch net to the last one) and defers quote updates when its request budget is spent
(Premium: 24,000 weight units a minute, 6 per request, 20 % kept for cancels and takers, so about
3,200 quote requests in the first minute and none after until the window rolls;
``--no-limit`` lifts the venue's limit and the executor's budget).

Settings: venue-sim ``tier: premium``, ``public_book: recorded`` (our quotes do not add book
updates), depth ladder off, ``verify_signatures: false`` (venue-sim's pure-Python signature check
is Lighter's cost, not ours; the executor still signs every tx). The raw floor
(``benchkit.rawhop``: four processes, XADD -> XREADGROUP three times) runs at the same rates on
the same Redis in the same run.

Last line: one JSON object; ``tick_to_order_p50_ms``/``_p99_ms``/``_p99_9_ms`` and
``raw_three_hop_p99_ms`` are those of the rate with the worse tick-to-order p99, per-rate figures
under ``rates``. Run: ``python bench/tick_to_order.py [--rates 100 1000] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.rawhop import three_hops  # noqa: E402
from benchkit.stack import (  # noqa: E402
    BUNDLED_RECORDING,
    Stack,
    StackError,
    get_json,
    machine,
    metric_value,
    percentiles,
    print_figures,
    redis_version,
    service_env,
)

from shared.bus import Bus  # noqa: E402
from shared.events import Bbo, OrderAccepted, OrderRejected, derive_id  # noqa: E402
from shared.recording import read_recording, write_recording  # noqa: E402
from shared.redis_util import EmbeddedRedis, async_client, free_port  # noqa: E402

ACCOUNT = 1001
MARKET = "BTC"
TARGET_P99_MS = 2.0
TARGET_RAW_MULTIPLE = 3.0


async def _sign_ms(n: int = 200) -> float:
    """Median wall ms of one signature by the executor's signer (the official SDK's Go signer),
    create and cancel alternately, with a throwaway key, offline."""
    import lighter
    from pydantic import SecretStr

    from services.executor.engine import OrderCommand
    from services.executor.signer import Signer

    key, _pub, err = lighter.create_api_key()
    if err:
        raise RuntimeError(err)
    signer = await Signer.create("http://127.0.0.1:1", ACCOUNT, 4, 304, SecretStr(key))
    now = time.time_ns()
    cmds = [OrderCommand(kind="create", market=MARKET, market_id=1, client_order_index=5, side="buy", price=920000,
                         size=20, tif="post_only", order_expiry=-1, reduce_only=False, cause_id="x", ts_event=now),
            OrderCommand(kind="cancel", market=MARKET, market_id=1, client_order_index=5, order_index=7, side="buy",
                         cause_id="x", ts_event=now)]
    times = []
    try:
        for i in range(n):
            t0 = time.perf_counter()
            signer.sign(cmds[i % 2], i)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        with contextlib.suppress(Exception):
            await signer._client.close()
    return percentiles(times, (50,))["p50"]


def write_feed(path: Path, rate: float, seconds: float) -> int:
    """A recording of ``rate`` BTC top-of-book changes per second for ``seconds``: the top
    alternates between 115000.0/115000.1 and 115000.1/115000.2 (1 BTC each side). Returns the
    number of events."""
    header, _ = read_recording(BUNDLED_RECORDING)
    header.source = f"synthetic: {rate:g} BTC top-of-book changes per second (bench/tick_to_order.py)"
    header.notes = "benchmark feed, not market data"
    step = int(1e9 / rate)
    t0 = 1_800_000_000_000_000_000
    events = []
    for i in range(int(rate * seconds)):
        bid = 115000.0 + 0.1 * (i % 2)
        events.append(Bbo(id=derive_id("bench-feed", rate, i), ts_event=t0 + i * step, source="bench-feed",
                          market=MARKET, bid_px=round(bid, 1), bid_sz=1.0, ask_px=round(bid + 0.1, 1), ask_sz=1.0))
    write_recording(path, header, events)
    return len(events)


async def _watch_orders(ws_url: str, first: dict[int, int], ready: asyncio.Event) -> None:
    """Subscribe ``account_all/1001`` and keep, per client order index, the ``transaction_time``
    (µs) of the first update of the order."""
    async with websockets.connect(ws_url, max_size=None, ping_interval=20) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channel": f"account_all/{ACCOUNT}"}).decode())
        ready.set()
        async for raw in ws:
            msg = orjson.loads(raw)
            if msg.get("type") not in ("update/account_all", "subscribed/account_all"):
                continue
            for orders in (msg.get("orders") or {}).values():
                for o in orders:
                    coi = int(o["client_order_index"])
                    if coi not in first:
                        first[coi] = int(o["transaction_time"])


async def _quiet(redis, ns: str, groups: set[str], timeout: float) -> bool:
    """Wait until the consumer ``groups`` have read every entry of their streams and acknowledged
    it (3 polls in a row); False after ``timeout`` s. (Redis 6.2's XINFO GROUPS has no ``lag``:
    the group's last-delivered id is compared with the stream's last id.)"""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        if time.monotonic() > deadline:
            return False
        backlog = 0
        async for key in redis.scan_iter(match=f"{ns}:*"):
            if (await redis.type(key)) != b"stream":
                continue
            last = (await redis.xinfo_stream(key))["last-generated-id"]
            for g in await redis.xinfo_groups(key):
                name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
                if name in groups:
                    backlog += int(g.get("pending") or 0) + int(g["last-delivered-id"] != last)
        quiet = quiet + 1 if backlog == 0 else 0
        await asyncio.sleep(0.3)
    return True


async def run_rate(redis_url: str, rate: float, seconds: float, warmup_s: float, no_limit: bool,
                   workdir: Path, coalesce: bool = False, drain_timeout_s: float = 600.0) -> dict[str, Any]:
    """One stack, one rate: returns the figures of that rate."""
    wd = workdir / f"rate-{rate:g}{'-coalesced' if coalesce else ''}"
    wd.mkdir(parents=True, exist_ok=True)
    recording = wd / "feed.jsonl.gz"
    n_events = write_feed(recording, rate, warmup_s + seconds)
    ns = f"bench-t2o-{uuid.uuid4().hex[:8]}"
    ports = {"venue-sim": free_port(), "collector": free_port(), "executor": free_port(), "bench": free_port()}
    extra = {
        "LS_MARKETS": f"[{MARKET}]",
        "LS_SERVICES__VENUE_SIM__SPEED": "1",
        "LS_SERVICES__VENUE_SIM__TIER": "premium",
        "LS_SERVICES__VENUE_SIM__PUBLIC_BOOK": "recorded",
        "LS_SERVICES__VENUE_SIM__DEPTH__ENABLED": "false",
        "LS_SERVICES__VENUE_SIM__VERIFY_SIGNATURES": "false",
        "LS_SERVICES__EXECUTOR__TIER": "premium",
        "LS_SCREENING__EXTRA_STRATEGIES": "[bench]",  # the executor takes intents of configured strategies only
        # requotes faster than cancels are confirmed: orders being canceled count in the worst-case
        # inventory (0.0002 BTC each), so the default 0.01 BTC would refuse quotes at 1,000/s
        "LS_SERVICES__EXECUTOR__MAX_POSITION": "{BTC: 1.0}",
        "LS_SERVICES__EXECUTOR__DEFAULT_MAX_NOTIONAL_USD": "1000000",
    }
    if no_limit:
        extra.update({"LS_SERVICES__VENUE_SIM__RATE_LIMIT_PER_MIN": "0",
                      "LS_SERVICES__EXECUTOR__REQUESTS_PER_MINUTE": "0"})
    env = service_env(redis_url, ns, ports["venue-sim"], recording, wd,
                      {k: v for k, v in ports.items() if k != "bench"}, extra)
    stack = Stack(wd, env)
    venue = f"http://127.0.0.1:{ports['venue-sim']}"
    first: dict[int, int] = {}
    redis = async_client(redis_url)
    watcher: asyncio.Task | None = None
    try:
        async with aiohttp.ClientSession() as http:
            vs = stack.start("venue-sim", ports["venue-sim"])
            await stack.wait_healthy(http, vs)
            procs = [stack.start("executor", ports["executor"]), stack.start("collector", ports["collector"]),
                     stack.start("bench-strategy", ports["bench"], argv=[
                         sys.executable, "-m", "benchkit.tick_strategy", "--redis-url", redis_url, "--namespace", ns,
                         "--account", str(ACCOUNT), "--market", MARKET, "--http-port", str(ports["bench"]),
                         *(["--coalesce"] if coalesce else [])],
                         env={**env, "PYTHONPATH": str(Path(__file__).resolve().parent)})]
            for p in procs:
                await stack.wait_healthy(http, p)
            deadline = time.monotonic() + 90
            while True:  # executor reconciled (its key registered), collector subscribed
                ex = await stack.wait_healthy(http, procs[0])
                st = await get_json(http, f"{venue}/sim/status")
                if (ex.get("risk_state") or ex.get("state") or "running") == "running" and \
                        (st.get("subscribers") or {}).get("order_book:1", 0) > 0:
                    break
                if time.monotonic() > deadline:
                    raise StackError("executor or collector not ready after 90 s")
                await asyncio.sleep(0.3)
            ready = asyncio.Event()
            watcher = asyncio.create_task(_watch_orders(f"ws://127.0.0.1:{ports['venue-sim']}/stream", first, ready))
            await asyncio.wait_for(ready.wait(), 10)
            await asyncio.sleep(0.5)
            await get_json(http, f"{venue}/sim/start", method="POST")
            started = time.monotonic()
            while (st := await get_json(http, f"{venue}/sim/status"))["state"] != "finished":
                stack.check_alive()
                if time.monotonic() - started > warmup_s + seconds + 120:
                    raise StackError(f"replay not finished: {st.get('events_replayed')} of {n_events} events")
                await asyncio.sleep(0.5)
            replay_wall_s = time.monotonic() - started
            t_drain = time.monotonic()
            drained = await _quiet(redis, ns, {"bench", "executor"}, timeout=drain_timeout_s)
            drain_wall_s = time.monotonic() - t_drain
            await asyncio.sleep(1.0)  # the last orders' account_all updates
            status = await get_json(http, f"{venue}/sim/status")
            deferred = await metric_value(http, ports["executor"], "lighter_stack_executor_deferred_updates_total")
            superseded = await metric_value(http, ports["executor"], "lighter_stack_executor_superseded_intents_total")
            requests = await metric_value(http, ports["executor"], "lighter_stack_executor_requests_total")
            send_s = await metric_value(http, ports["executor"], "lighter_stack_executor_send_seconds_sum")
            sends = await metric_value(http, ports["executor"], "lighter_stack_executor_send_seconds_count")
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        stack.stop_all()
    try:
        bus = Bus(redis, ns)
        book = [d for d in await bus.read_all(bus.streams.book(MARKET)) if isinstance(d.event, Bbo)]
        bbos = [d.event for d in book]
        exec_d = await bus.read_all(bus.streams.exec(ACCOUNT))
        execs = [d.event for d in exec_d]
        intent_d = await bus.read_all(bus.streams.intent(ACCOUNT))
        intents = len(intent_d)
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()
    if not bbos:
        raise StackError("no Bbo reached the book stream")
    t_first = bbos[0].ts_event
    t_from = t_first + int(warmup_s * 1e9)
    window = [b for b in bbos if b.ts_event >= t_from]
    accepted = [e for e in execs if isinstance(e, OrderAccepted) and e.strategy == "bench" and e.ts_event >= t_from]
    rejected = [e for e in execs if isinstance(e, OrderRejected) and e.strategy == "bench" and e.ts_event >= t_from]
    lat = [(first[e.client_order_index] * 1000 - e.ts_event) / 1e6 for e in accepted if e.client_order_index in first]
    span_s = (window[-1].ts_event - window[0].ts_event) / 1e9 if len(window) > 1 else 0.0
    ticks_with_order = len({e.ts_event for e in accepted})
    pc = percentiles(lat)
    stages = _stages(book, intent_d, exec_d, accepted, first)
    acct = (status.get("accounts") or {}).get(str(ACCOUNT)) or {}
    arrivals = sorted(first[e.client_order_index] for e in accepted if e.client_order_index in first)
    busy_s = (arrivals[-1] - arrivals[0]) / 1e6 if len(arrivals) > 1 else 0.0
    return {
        "rate_per_s": rate, "coalesce": coalesce, "updates": len(window),
        "orders_per_s": round(len(arrivals) / busy_s, 1) if busy_s else None, "achieved_rate_per_s": round(len(window) / span_s, 1) if span_s else None,
        "replay_wall_s": round(replay_wall_s, 1), "drain_wall_s": round(drain_wall_s, 1), "drained": drained,
        "intents": intents,
        "orders": len(accepted), "orders_measured": len(lat), "rejected": len(rejected),
        "reject_reasons": dict(Counter(f"{e.code}: {e.reason[:60]}" for e in rejected).most_common(3)),
        "updates_without_order": len(window) - ticks_with_order,
        "executor_deferred_updates": int(deferred), "executor_superseded_intents": int(superseded),
        "executor_requests": int(requests),
        "executor_send_ms_mean": round(send_s / sends * 1e3, 3) if sends else None,
        "venue_rate_limited": acct.get("rate_limited", 0), "venue_max_requests_per_min": acct.get("max_requests_per_min", 0),
        "p50_ms": pc["p50"], "p99_ms": pc["p99"], "p99_9_ms": pc["p99.9"],
        "max_ms": round(max(lat), 3) if lat else None,
        "stages_p50_ms": stages,
    }


def _entry_ms(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _stages(book, intent_d, exec_d, accepted, first) -> dict[str, float | None]:
    """Where the time goes, p50 per stage (ms after the tick) over the measured orders:
    ``collector_recv`` (the Bbo's ``ts_recv``: the frame read by the collector), ``md_xadd``,
    ``intent_xadd`` and ``accepted_xadd`` (Redis entry ids: server time in whole ms, so these
    three are floored to the ms), ``venue_recv`` (the measured arrival)."""
    bbo_by_id = {d.event.id: d for d in book}
    intent_by_cause = {d.event.causation_id: d for d in intent_d if d.event is not None}
    intent_by_id = {d.event.id: d for d in intent_d if d.event is not None}
    acc_entry = {d.event.client_order_index: d for d in exec_d if isinstance(d.event, OrderAccepted)}
    cols: dict[str, list[float]] = {k: [] for k in ("collector_recv", "md_xadd", "intent_xadd", "venue_recv",
                                                    "accepted_xadd")}
    for e in accepted:
        intent = intent_by_id.get(e.causation_id)
        bbo = bbo_by_id.get(intent.event.causation_id) if intent else bbo_by_id.get(e.causation_id)
        if bbo is None or e.client_order_index not in first:
            continue
        tick = e.ts_event
        cols["collector_recv"].append((bbo.event.ts_recv - tick) / 1e6)
        cols["md_xadd"].append(_entry_ms(bbo.entry_id) - tick / 1e6)
        it = intent or intent_by_cause.get(bbo.event.id)
        if it is not None:
            cols["intent_xadd"].append(_entry_ms(it.entry_id) - tick / 1e6)
        cols["venue_recv"].append((first[e.client_order_index] * 1000 - tick) / 1e6)
        cols["accepted_xadd"].append(_entry_ms(acc_entry[e.client_order_index].entry_id) - tick / 1e6)
    return {k: percentiles(v, (50,))["p50"] for k, v in cols.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description="tick-to-order latency through the real processes")
    ap.add_argument("--rates", type=float, nargs="+", default=[100.0, 1000.0], help="book updates per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per rate (after the warm-up)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of updates left out at the start")
    ap.add_argument("--no-limit", action="store_true",
                    help="lift venue-sim's rate limit and the executor's request budget")
    ap.add_argument("--coalesced-rates", type=float, nargs="*", default=[1000.0],
                    help="rates also run with the strategy answering only the newest BBO of each batch")
    args = ap.parse_args()
    load_before = machine()["loadavg"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-t2o-"))
    rates: dict[str, Any] = {}
    runs = [(r, False) for r in args.rates] + [(r, True) for r in args.coalesced_rates]
    with EmbeddedRedis() as server:
        raws: dict[float, list[float]] = {}
        for rate, coalesce in runs:
            if rate not in raws:
                raws[rate] = three_hops(server.url, rate, args.seconds, args.warmup)
            raw = raws[rate]
            fig = asyncio.run(run_rate(server.url, rate, args.seconds, args.warmup, args.no_limit, workdir, coalesce))
            rp = percentiles(raw)
            fig.update(raw_three_hop_p50_ms=rp["p50"], raw_three_hop_p99_ms=rp["p99"],
                       raw_three_hop_p99_9_ms=rp["p99.9"], raw_samples=len(raw))
            fig["target_met"] = bool(fig["p99_ms"] is not None and rp["p99"] is not None
                                     and fig["p99_ms"] <= TARGET_RAW_MULTIPLE * rp["p99"]
                                     and fig["p99_ms"] <= TARGET_P99_MS)
            name = f"{rate:g}" + ("-coalesced" if coalesce else "")
            rates[name] = fig
            print(f"rate {name}/s: " + ", ".join(f"{k}={v}" for k, v in fig.items()), flush=True)
        rv = redis_version(server.url)
    every = [f for f in rates.values() if not f["coalesce"]] or list(rates.values())
    worst = max(every, key=lambda f: f["p99_ms"] if f["p99_ms"] is not None else float("inf"))
    figures = {
        "tick_to_order_p50_ms": worst["p50_ms"], "tick_to_order_p99_ms": worst["p99_ms"],
        "tick_to_order_p99_9_ms": worst["p99_9_ms"], "raw_three_hop_p50_ms": worst["raw_three_hop_p50_ms"],
        "raw_three_hop_p99_ms": worst["raw_three_hop_p99_ms"], "raw_three_hop_p99_9_ms": worst["raw_three_hop_p99_9_ms"],
        "worst_rate_per_s": worst["rate_per_s"], "target_met": all(f["target_met"] for f in every),
        "sign_ms_per_tx_p50": asyncio.run(_sign_ms()),
        "no_limit": args.no_limit, "seconds": args.seconds, "rates": rates,
        "machine": {**machine(), "loadavg_before": load_before, "redis": rv},
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
