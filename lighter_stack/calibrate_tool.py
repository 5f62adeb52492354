"""``lighter-stack calibrate``: calibrate one market of a recording and print, write or publish
the :class:`~shared.events.ModelParams` (the engine is :mod:`shared.calibration`)."""

from __future__ import annotations

from shared.calibration import WARN, calibrate, calibration_settings, summary
from shared.events import Bbo, Trade


def calibrate_command(data: object, market: str, config: object | None = None, out: object | None = None,
                      publish: bool = False, strategy: str | None = None, order_size: float | None = None) -> int:
    """What ``lighter-stack calibrate`` runs: load ``data`` (a recording or a top-of-book+trades
    CSV folder, as the backtest does), calibrate ``market``, print a short report and, as the
    last stdout line, the :func:`summary` JSON; write it to ``out`` if given; append the
    :class:`ModelParams` to ``{ns}:params:{strategy}`` with ``publish``.

    Settings: the stack config (``config`` path or the default): ``services.maker.calibration``
    (see :func:`calibration_settings`), the strategy name ``services.maker.strategy`` (default
    ``maker``), market metadata overrides ``services.backtest.markets``; ``namespace``/``redis_url``
    for publishing.

    Returns:
        0 parameters ok, 1 computed but not ok (``problems`` printed), 2 bad input or config.
    """
    import json
    import sys
    from pathlib import Path

    from pydantic import ValidationError

    from lighter_stack.backtest.data import load_data
    from lighter_stack.backtest.runner import BacktestConfig
    from shared.config import ConfigError, load_config
    from shared.recording import RecordingError

    def fail(msg: str) -> int:
        print(f"calibrate: {msg}", file=sys.stderr)
        return 2

    try:
        from lighter_stack.registry import config_sections

        stack = load_config(Path(str(config)) if config is not None else None, sections=config_sections())
        maker_raw: dict[str, object] = {}
        for key in sorted(stack.services):
            if key.lower().replace("-", "_") == "maker":
                maker_raw.update(stack.services[key] or {})
        try:
            cfg = calibration_settings(maker_raw)
        except ValidationError as exc:
            raise ConfigError("config error: " + "; ".join(
                f"services.maker.calibration.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
        overrides = stack.section("backtest", BacktestConfig).market_overrides()
    except ConfigError as exc:
        return fail(str(exc))
    strategy = strategy or str(maker_raw.get("strategy") or "maker")
    sym = market.upper()
    try:
        md = load_data(Path(str(data)), overrides)
    except RecordingError as exc:
        return fail(str(exc))
    info = next((m for m in md.markets if m.symbol == sym), None)
    if info is None:
        return fail(f"market {sym} is not in {data} (markets: {', '.join(m.symbol for m in md.markets)})")
    bbos: list[Bbo] = []
    trades: list[Trade] = []
    try:
        for ev in md.events():
            if isinstance(ev, Bbo) and ev.market == sym:
                bbos.append(ev)
            elif isinstance(ev, Trade) and ev.market == sym:
                trades.append(ev)
    except RecordingError as exc:
        return fail(str(exc))
    try:
        params = calibrate(bbos, trades, info, cfg, strategy=strategy, order_size=order_size)
    except ValueError as exc:
        return fail(str(exc))
    span = (params.window_end - params.window_start) / 1e9
    print(f"calibrated {sym} on {md.kind} {data}: {len(bbos)} Bbo, {len(trades)} trades, {span:.0f} s "
          f"(tick {info.tick:g} USD)")
    print(f"  sigma {params.sigma:.6g} ticks/sqrt(s) ({params.sigma_source}; garch {params.sigma_garch}, "
          f"rolling {params.sigma_rolling})")
    print(f"  A {params.A:.6g} 1/s, k {params.k:.6g} 1/tick (R^2 {params.fit.get('ak_r2')}), "
          f"gamma {params.gamma:.6g} 1/(tick*clip)")
    for p in params.problems:
        print(f"  {p}" if p.startswith(WARN) else f"  problem: {p}")
    if not params.ok:
        print("  NOT OK: a quoting engine must not use these parameters")
    doc = summary(params, cfg.horizon_s)
    line = json.dumps(doc, sort_keys=True, allow_nan=False)
    if out is not None:
        Path(str(out)).write_text(line + "\n")
    if publish:
        import asyncio

        from redis.exceptions import RedisError

        from shared.bus import Bus
        from shared.redis_util import async_client, resolve_redis_url

        async def _pub() -> str:
            client = async_client(resolve_redis_url(stack.redis_url))
            try:
                bus = Bus(client, stack.ns, stack.stream_maxlen)
                stream = bus.streams.params(strategy)
                await bus.publish(stream, [params])
                return stream
            finally:
                await client.aclose()

        try:
            print(f"published to {asyncio.run(_pub())}")
        except (OSError, RuntimeError, RedisError) as exc:
            print(f"calibrate: publish failed: {exc}", file=sys.stderr)
            print(line)
            return 2
    print(line)
    return 0 if params.ok else 1
