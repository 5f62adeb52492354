"""Regenerate docs/configuration.md from the config models: ``python docs/gen_config_reference.py``.

The meanings live here, next to nothing else; ``tests/shared/test_config_docs.py`` fails when a
config field has no line in the generated page."""

from __future__ import annotations

from pathlib import Path

from lighter_stack.backtest.runner import BacktestConfig
from lighter_stack.registry import SERVICES
from shared.config import ScreeningConfig, StackConfig, VenueConfig

_MODEL = {name: spec.config_model() for name, spec in SERVICES.items()}
VenueSimConfig, CollectorConfig, TrendConfig = _MODEL["venue-sim"], _MODEL["collector"], _MODEL["strategy-trend"]
RenkoConfig, GridConfig, MakerConfig = _MODEL["strategy-renko"], _MODEL["strategy-grid"], _MODEL["maker"]
HedgerConfig, ExecutorConfig, LedgerConfig = _MODEL["hedger"], _MODEL["executor"], _MODEL["ledger"]
RecorderConfig = _MODEL["recorder"]

# the fields of shared.strategy_base.TargetStrategyConfig (trend, renko)
_TARGET_STRATEGY = {
    "strategy": "strategy name: fills, intents and consumer group", "markets": "null = top-level markets",
    "http_port": "/health and /metrics port",
    "dry_run": "decide, count and log signals with a simulated position; send no intents",
    "candle_fill_gaps": "empty buckets become flat candles", "candle_max_fill": "at most this many filled buckets",
    "take_profit_bps": "exit at this gain from the average entry, bps",
    "stop_loss_bps": "exit at this loss, bps", "max_hold_s": "time stop, seconds of event time",
    "sizes": "per market `min_size`, `max_size`, `size_step` in base units (markets not listed: from notional_usd)",
    "notional_usd": "markets without sizes: min_size = this notional, USD, on the lot and >= the market minimums; "
                    "max_size twice it",
    "max_slippage_bps": "worst price the executor may pay, bps from the touch",
    "retry_after_s": "re-send an unanswered target after this long",
}

MEANING = {
    StackConfig: {
        "mode": "`paper` (venue-sim, default) or `live` (Lighter; see docs/modes.md)",
        "namespace": "stream prefix; default: the mode",
        "redis_url": "Redis URL; `REDIS_URL` wins; unset: 127.0.0.1:6379 or the bundled server",
        "account_index": "Lighter account the executor trades",
        "api_key_index": "API key index the executor signs with (0-254; use 4 or more live)",
        "venue": "where the Lighter API is (below)",
        "markets": "markets (symbols) collected and traded",
        "stream_maxlen": "approximate maximum entries per stream (older entries are trimmed)",
        "instance": "`LS_INSTANCE`: run a strategy service as this instance of its section's `instances` "
                    "(docs/runbook.md, scaling out); null = the section itself",
        "lease_ttl_s": "life (s) of a lease in Redis unless renewed (every third of it): a strategy instance's lock "
                       "and the executor's account lock",
        "services": "one section per service (below)",
        "screening": "semantic checks of every consumer's inputs (below; docs/internals.md \"Input screening\")",
    },
    ScreeningConfig: {
        "max_jump_pct": "a top of book whose mid, or a trade whose price, is more than this many % from the last "
                        "good mid of its market is dead-lettered (`price-band`)",
        "confirm_s": "a new price level is believed after out-of-band tops consistent with each other for this "
                     "many seconds of event time ...",
        "confirm_count": "... and at least this many of them",
        "max_spread_pct": "a top whose spread (ask - bid) / mid is wider than this many % is dead-lettered "
                          "(`wide-spread`; also the only bound of a market's first top besides its price limits)",
        "max_future_s": "an event stamped more than this many seconds after the wall clock is dead-lettered "
                        "(`bad-time`)",
        "strategies": "strategies whose intents the executor takes (others: `unknown-strategy`); null = the "
                      "`strategy` of every strategy section (defaults included), their named `instances`, plus extra_strategies",
        "extra_strategies": "more intent senders to accept (e.g. an external bot)",
    },
    VenueConfig: {
        "rest_url": "Lighter REST base URL (venue-sim in paper mode)",
        "ws_url": "Lighter WebSocket URL",
        "chain_id": "chain id in signatures (304 mainnet, 300 testnet)",
    },
    VenueSimConfig: {
        "host": "bind address", "port": "REST + WS + /health + /metrics port",
        "recording": "recording to replay (relative to the repo root)",
        "speed": "recorded seconds replayed per wall second (the venue clock stays the wall clock: limits and speed bump are real); <= 0 = as fast as possible",
        "max_gap_s": "recorded quiet stretches longer than this take max_gap_s/speed wall seconds",
        "autostart": "start the replay at once; false = wait for `POST /sim/start`",
        "start_when_subscribed": "start once every market's book and the account's channels have a subscriber",
        "account_index": "account watched by start_when_subscribed; null = top-level account_index",
        "fills_file": "JSON-lines record of every fill; empty = none",
        "audit_file": "JSON-lines audit log of every published book (per nonce) and accepted create order (the chaos suite checks against it); empty = none",
        "tier": "`standard` (0 fees, 300/200/200 ms speed bump) or `premium`",
        "taker_delay_ms": "taker speed bump, ms; null = the tier's",
        "maker_delay_ms": "maker speed bump, ms; null = the tier's",
        "cancel_delay_ms": "cancel speed bump, ms; null = the tier's",
        "maker_fee": "maker fee, fraction of notional; null = the tier's",
        "taker_fee": "taker fee, fraction of notional; null = the tier's",
        "initial_collateral": "USDC of the default account (when `accounts` is unset; its margin collateral)",
        "accounts": "the venue's accounts, list of `{index, l1_address, collateral}`; default: `account_index` owned by the paper L1 address (shared/venue/paper_identity.py) with `initial_collateral`; other indexes get 21100 account not found",
        "margin_checks": "refuse create orders beyond the account's initial margin (21739); null = on, off in lockstep",
        "market_stats_interval_s": "market_stats messages at most this often per market (sim seconds)",
        "recent_trades": "public trades kept for `recentTrades`",
        "lockstep": "replay without the wall clock: next event only when the bus is quiet (deterministic; docs/venue-sim.md)",
        "lockstep_settle_ms": "lockstep: wall ms the stack must stay quiet before the next step",
        "lockstep_timeout_s": "lockstep: longest wait for quiet before replaying on (warning)",
        "public_book": "`venue` (recorded level + our orders) or `recorded` (recording only); null = recorded in lockstep",
        "rate_limit": "refuse tx requests (per account) and reads (per client IP) over the rolling-minute limit (venue time: wall, or recorded in lockstep) with HTTP 429 23000 before processing them; false = count only",
        "rate_limit_per_min": "tx request weight per rolling minute per account; null = the tier's (60 standard, 24000 premium); 0 = none",
        "request_weight": "weight of one sendTx/sendTxBatch request; null = the tier's (1 standard, 6 premium)",
        "ws_idle_timeout_s": "a WebSocket that sends nothing (pings count) for this many wall seconds is closed (Lighter: 120)",
        "ws_max_subscriptions": "channels per WebSocket connection; beyond: 23001 (Lighter: 500); 0 = none",
        "ws_messages_per_min": "client messages per rolling wall minute per connection, txs not counted; beyond: 30009 (Lighter: 200); 0 = none",
        "depth": "synthetic depth ladder behind the recorded touch: `enabled` (null = on when paced, off in "
                 "lockstep), `levels` per side, `step_ticks` (0 = use `step_bps`), `size_mode` "
                 "(constant/linear/geometric), `size_multiple` of the touch size, `size_growth`, "
                 "`refill_per_s` (fraction of a level per sim second), `max_sweep_levels`; docs/venue-sim.md",
        "verify_signatures": "refuse txs without a key registered for (account, api key) (21121) or whose Sig "
                             "does not verify (21120); ChangePubKey under its own PubKey",
        "verify_auth": "refuse accountActiveOrders/accountInactiveOrders and the auth WS channels without a "
                       "valid auth token of that account (20013)",
        "chain_id": "chain id of tx hashes and signatures (304: the SDK's for non-Lighter URLs)",
        "faults": "faults injected from the start, all off by default (`POST /sim/fault` changes them at run time): "
                  "`seed`; probabilities per opportunity `ws_disconnect` (`ws_disconnect_mode` abort/close), "
                  "`book_drop`, `book_duplicate`, `book_reorder`, `account_delay` (`account_delay_ms`), "
                  "`account_duplicate`, `rate_limit` (429 23000), `http_5xx` (`http_5xx_statuses`; `http_scope` "
                  "tx/api), `nonce_reject` (21104, nonce kept), `tx_timeout` (executed, never answered: "
                  "`tx_timeout_ms`, `tx_timeout_answer` close/504); docs/venue-sim.md, Faults",
        "state_path": "state file: continue from it at start, keep it written (write-through before answering "
                      "or announcing a change), so a restart, even after SIGKILL, keeps book, orders, accounts, "
                      "nonces and keys; empty = none",
        "state_interval_ms": "market-data-only changes reach the state file at most this many wall ms late",
        "source": "`recording` (replay `recording`, default) or `live`: follow an upstream Lighter feed and match "
                  "our orders locally, never sending them anywhere (paper trading on live market data; not with "
                  "lockstep or state_path; docs/venue-sim.md, Live source)",
        "upstream_ws_url": "`source: live`: the upstream Lighter WebSocket (order_book, trade, market_stats)",
        "upstream_rest_url": "`source: live`: the upstream REST base URL (orderBookDetails: market ids, decimals, "
                             "minimums)",
        "markets": "`source: live`: symbols followed upstream; null = top-level markets",
        "upstream_reconnect_initial_s": "`source: live`: first upstream reconnect / metadata retry delay; doubles",
        "upstream_reconnect_max_s": "`source: live`: longest upstream reconnect delay",
        "upstream_timeout_s": "`source: live`: upstream REST timeout, WS handshake and `connected` frame timeout",
    },
    CollectorConfig: {
        "markets": "markets to collect; null = top-level markets", "http_port": "/health and /metrics port",
        "reconnect_initial_s": "first reconnect delay; doubles up to reconnect_max_s",
        "reconnect_max_s": "longest reconnect delay",
        "healthy_after_s": "a connection up this long resets the backoff",
        "ping_interval_s": "our ping interval", "rest_timeout_s": "REST timeout (market metadata)",
        "unhealthy_after_s": "/health answers 503 after this long disconnected",
        "seen_trade_ids": "trade ids remembered to publish resent trades once",
        "ws_url": "WS to collect from; null = venue.ws_url (paper on live data: Lighter's, config/paper-live.yaml)",
        "rest_url": "REST base URL of the market metadata; null = venue.rest_url",
        "max_batch_frames": "frames already waiting published in one Redis transaction, at most this many",
    },
    TrendConfig: {
        **_TARGET_STRATEGY, "candle_interval_s": "candle length, seconds of mid",
        "rsi_period": "Wilder RSI period (candles)", "bb_period": "Bollinger period", "bb_std": "Bollinger width, population std",
        "ema_fast_period": "fast EMA", "ema_slow_period": "slow EMA", "atr_period": "Wilder ATR period (sizing)",
        "volatility_period": "returns in the volatility mean",
        "rsi_bullish_threshold": "long needs RSI > this + momentum; short exit when RSI > this",
        "rsi_bearish_threshold": "short needs RSI < this - momentum; long exit when RSI < this",
        "rsi_momentum_strength": "RSI distance from the thresholds to enter",
        "bb_position_threshold": "long needs band position >= 0.5 - this; short <= 0.5 + this",
        "trend_confirmation_bps": "min |EMA fast - EMA slow| / EMA slow, bps",
        "vol_min_bps": "min mean |15 s return|, bps (seed 2.0 for SOL; paper.yaml 0.5 for BTC/ETH)",
        "vol_max_bps": "max mean |return|, bps",
        "atr_size_multiplier": "size = ATR * this / mid, clamped to the market's sizes",
    },
    RenkoConfig: {
        **_TARGET_STRATEGY,
        "atr_candle_interval_s": "candles of the mid for the brick-size ATR, seconds",
        "renko_atr_period": "Wilder ATR period (candles)", "renko_atr_multiplier": "brick size = ATR x this",
        "fallback_brick_bps": "brick size until the ATR is ready, bps of the mid (seed: 0.1 %)",
        "min_brick_bps": "floor on the brick size, bps of the mid (0 = pure ATR)",
        "renko_reversal_bricks": "bricks of counter-move to reverse (2 = standard Renko, 1 = seed)",
        "renko_lookback": "bricks searched for a divergence", "ao_fast_period": "AO fast SMA (bricks)",
        "ao_slow_period": "AO slow SMA (bricks)", "bb_period": "Bollinger period (bricks)",
        "bb_std": "Bollinger width, population std",
        "min_divergence_strength": "trade when strength >= this (0..1)",
        "bb_enhancement_threshold": "near a band edge: band position <= this (long) or >= 1 - this (short)",
        "bb_enhancement_factor": "strength multiplier near a band edge (capped at 1)",
        "divergence_price_bricks": "price gap between swings, in bricks, that gives full price strength",
        "divergence_ao_bricks": "AO gap between swings, in bricks, that gives full AO strength",
        "ao_size_multiplier": "size = |AO| x this / mid, clamped to the market's sizes",
    },
    GridConfig: {
        "strategy": "strategy name: fills, intents and consumer group", "markets": "null = top-level markets",
        "http_port": "/health and /metrics port",
        "dry_run": "compute the grid and its metrics, send no intents",
        "spacing_pct": "grid step, percent of the anchor mid (seed doc 0.1; seed code 0.05)",
        "levels_per_side": "levels below and above the anchor", "max_orders": "most resting orders wanted at once",
        "recenter_pct": "re-anchor when the mid moves this far from the anchor, percent",
        "cooldown_s": "minimum event time between two changes of the wanted orders",
        "post_only": "grid orders are post-only",
        "sizes": "order size per market, base units (markets not listed: from notional_usd)",
        "max_position": "per market: stop adding on the side that would grow |position| beyond this "
                        "(markets not listed: max_position_orders orders)",
        "notional_usd": "markets without sizes: order notional, USD, on the lot and >= the market minimums",
        "max_position_orders": "markets without max_position: the cap is this many orders",
    },
    HedgerConfig: {
        "strategy": "strategy name of the hedge: fills, intents and consumer group",
        "maker_strategy": "strategy whose inventory is hedged",
        "http_port": "/health and /metrics port", "dry_run": "decide and expose metrics, send no intents",
        "markets": "per market `trigger_units`, `target_units`, `max_clip_units`, `min_clip_units` (base units); "
                   "merged over the SOL default; `lighter-stack profile` writes them. Hedged: these markets and "
                   "the top-level markets (those without thresholds: from notional_usd)",
        "trigger_notional_usd": "no hedge while |exposure| x mid is at or below this, USD (0 = off)",
        "prefer_passive": "first try a post-only quote at the touch",
        "passive_wait_s": "event time the passive quote gets before it is judged",
        "passive_success_fraction": "passive succeeded when |exposure| fell by this fraction of its clip",
        "passive_cancel_timeout_s": "cross anyway when the passive cancel is not confirmed within this",
        "max_exposure_s": "over the trigger this long: every hedge crosses (seed passive_timeout)",
        "price_offset_bps": "worst price of a cross, bps beyond the touch",
        "max_slippage_bps": "cap every cross is checked against, bps from the touch",
        "cooldown_s": "event time between two hedge attempts",
        "emergency_after_s": "exposure or an executor guard held this long: emergency",
        "emergency_clip_multiplier": "clip multiplier in an emergency",
        "emergency_extra_bps": "extra offset of an emergency cross; offset + this must be <= max_slippage_bps",
        "emergency_cooldown_s": "event time between two emergency attempts",
        "notional_usd": "markets without thresholds: base order notional, USD; trigger 2.5x, target 1x, "
                        "max clip 5x it, min clip the market's smallest order",
    },
    BacktestConfig: {
        "account_index": "simulated account (default: the top-level account_index)",
        "tier": "`standard` (0 fees, 300/200/200 ms speed bump) or `premium`",
        "maker_fee": "maker fee fraction overriding the tier's", "taker_fee": "taker fee fraction overriding the tier's",
        "initial_capital_usd": "equity at the start (returns, drawdown %)",
        "equity_sample_s": "equity sampling interval, seconds of event time",
        "markets": "market metadata per symbol (MarketInfo fields) for data of unknown markets",
    },
    ExecutorConfig: {
        "http_port": "/health and /metrics port",
        "max_position": "per market: max |account position|, base units",
        "default_max_position": "for markets not listed, base units; null = none (the notional limit "
                                "bounds them), 0 = no trading there",
        "max_notional_usd": "per market: max |position| x mid, USD",
        "default_max_notional_usd": "for markets not listed",
        "default_slippage_bps": "used when an intent gives no max_slippage_bps",
        "quote_expiry": "post-only/GTT order expiry, ms (-1 = 28 days)",
        "max_intent_age_ms": "older intents are not traded: a stale target is refused (OrderRejected code 0 `stale intent`) and not recorded, a stale quote ignored (0 = off)",
        "reconcile_retry_s": "retry interval while reconciliation fails (halted meanwhile)",
        "reconcile_timeout_s": "timeout of one reconciliation",
        "cancel_on_start": "cancel our resting orders after reconciling",
        "cancel_on_shutdown": "cancel our resting orders on SIGTERM (positions are kept)",
        "cancel_scope": "which orders those cancel: `own` (client order indices we placed; other bots' "
                        "orders stay), `all` (account-wide cancel-all) or `none` (no cancel)",
        "paper_key": "`generate` (env key or a throwaway one) or `env` (require LIGHTER_API_PRIVATE_KEY)",
        "auth_token_ttl_s": "lifetime of the auth token for private channels",
        "ws_ping_interval_s": "account feed ping interval", "ws_backoff_max_s": "longest reconnect delay",
        "unattributed_strategy": "strategy name given to fills of orders we did not place",
        "tier": "Lighter account tier whose request budget is modelled: `standard` or `premium`",
        "requests_per_minute": "request budget per rolling minute of event time, weight units; "
                               "null = the tier's (60 standard, 24000 premium); 0 = not modelled",
        "request_weight": "weight of one sendTx/sendTxBatch request; null = the tier's (1 standard, 6 premium)",
        "batch_max_txs": "transactions per sendTxBatch request (one engine step = one batch when it fits)",
        "budget_reserve": "share of the budget quote updates may not use (kept for cancels and IOCs)",
        "rate_limit_backoff_s": "after error 23000: quote updates and cancel retries wait this long (event time)",
        "order_check_s": "wall seconds between checks of stale orders with the venue (REST); 0 = no checks",
        "order_stale_s": "an IOC in flight / an unconfirmed cancel this long (event time) is asked about",
        "lockstep_barrier": "lockstep runs only (demo --lockstep sets it): wait until every other consumer "
                            "group is idle and gather all intents into one engine batch, as the backtest does",
        "lockstep_order": "strategy names in the backtest's order: how the intents of one barrier batch are sorted",
        "lockstep_timeout_s": "longest wall wait of the barrier for quiet (then it goes on, with a warning)",
        "leverage": "per market, set at start-up (updateLeverage): `{BTC: {leverage: 5, margin_mode: cross}}`; "
                    "a refusal stops start-up",
        "protective_stop": "executor-kept reduce-only stop-loss per (strategy, market) with a position: `enabled` "
                           "(off by default; recommended in live), `distance_bps` per market / "
                           "`default_distance_bps`, `max_slippage_bps`, `reference` (`entry`|`mark`), "
                           "`resize_threshold`, `retry_s`, `exclude`; see runbook.md, protective stops",
        "lock_wait_s": "at start, wait this long (s) for the per-account lock another executor holds "
                       "(`{ns}:lock:executor:<account>`; a killed one's expires after `lease_ttl_s`), then exit 3",
        "dead_man_switch_s": "0 = off; else a scheduled cancel-all (tx 16) kept this far ahead while alive "
                             "(300 .. 1296000 s), aborted at a clean shutdown; it cancels the protective stops too",
    },
    LedgerConfig: {
        "db_url": "SQLAlchemy URL: SQLite (WAL) or postgresql+psycopg://...; env LEDGER_DB_URL wins",
        "http_port": "/health and /metrics port", "group": "consumer group",
        "claim_idle_ms": "claim entries a dead ledger left pending this long",
        "batch": "entries per read", "block_ms": "read wait", "seen_capacity": "fill ids remembered in memory",
    },
    RecorderConfig: {
        "out": "Parquet archive folder; null = <LIGHTER_STACK_DATA or ./var>/archive (docs/replay.md)",
        "http_port": "/health and /metrics port", "read_batch": "entries per stream per XREAD",
        "block_ms": "XREAD wait, ms", "discover_s": "how often the namespace is scanned for new streams, s",
        "flush_s": "buffered rows of open hours are written at least this often, s (closed hours at once)",
        "behind_warn_s": "/health answers 503 `behind` when a stream is this far ahead of what was read, s",
    },
}

# the maker's fields carry their meaning in their Field(description=...)
MEANING[MakerConfig] = {n: f.description or '' for n, f in MakerConfig.model_fields.items()}
NotifierConfig = _MODEL["notifier"]  # so do the notifier's
MEANING[NotifierConfig] = {n: f.description or '' for n, f in NotifierConfig.model_fields.items()}
MEANING[_MODEL["copytrade"]] = {
    "http_port": "port of the API, /health and /metrics", "host": "interface the API listens on",
    "strategy": "strategy name of its intents and fills", "accounts": "accounts the API trades; empty: account_index",
    "scaling_factor": "size = total asset value x reference_position_ratio x this (seed 004 default 0.8)",
    "stop_loss_ratio": "stop-loss at a loss of this fraction of the margin", "initial_margin_fraction":
    "IMF for the stop-loss when the venue gives none", "max_slippage_bps": "slippage limit of the executor's order",
    "max_retries": "retries when the venue cannot be read", "retry_interval_s": "seconds between retries",
    "markets_ttl_s": "market list cache (s)", "rest_timeout_s": "venue REST timeout (s)",
    "api_key_env": "environment variable holding the X-API-Key value (empty: open API)",
    "requests_kept": "finished requests remembered for idempotency and status",
}

SECTIONS = [*_MODEL.items(), ("backtest", BacktestConfig)]


HEAD = """# Configuration reference

Every service reads one YAML file: `--config FILE`, else `LIGHTER_STACK_CONFIG`, else
`config/paper.yaml` of the stack home (`LIGHTER_STACK_HOME`, default the source checkout; the
image sets `/app`, docs/deploy.md); relative data paths resolve against the stack home too. Top-level keys are shared; each service has its section under `services:`.
Any key can be overridden from the environment with `LS_<KEY>__<SUBKEY>=value` (case-insensitive,
values parsed as YAML), e.g. `LS_VENUE__REST_URL=http://venue-sim:8090` or
`LS_SERVICES__STRATEGY_TREND__VOL_MIN_BPS=1.0`. `REDIS_URL` sets `redis_url`.

A wrong value stops the service at start-up with a message naming the field, e.g.
`config error: services.executor.max_position.BTC: Input should be a valid number`.

Typos stop start-up too. `lighter-stack run SERVICE` (and `backtest`, `demo`, `calibrate`) checks
the whole file, every section and not only the service's own, so one typo anywhere stops every
service, naming the bad name and the known ones:

- a section under `services:` that no service reads:
  `config error: services.strategy-trnd: unknown service section (known: backtest, collector, executor, ...)`;
- a key a section (or a nested part of it: a market's `sizes`, the hedger's `markets.<SYM>`, the
  maker's `calibration`, `backtest.markets.<SYM>`) does not have:
  `config error: services.executor.max_postion: unknown key (known: auth_token_ttl_s, ...)`.

Section names match with `-` and `_` alike and in any case (`LS_SERVICES__STRATEGY_TREND__...`
is `strategy-trend`). The known sections are the services of `lighter_stack/registry.py` plus
`backtest`.

Any market, no per-market config: every strategy trades a market its section does not list.
Per-market values (`sizes`, `max_position`, the maker's `tick_size`/`soft_inventory`/
`max_inventory_units`, the hedger's `markets.<SYM>`) are derived at the market's first mid from
the strategy's `notional_usd` (25 USD by default) and the market's lot and minimums (from the
backtest's data, Lighter's known markets, or guessed from the mid); listed values still win. The
executor bounds an unlisted market by `default_max_notional_usd` (2000 USD) only
(`default_max_position: null`). So `lighter-stack backtest --data <CSV folder of any market>
--strategy trend|renko|grid|maker --out DIR` needs no config. Every strategy has `dry_run`.
Named instances: the section of a strategy service (trend, renko, grid, maker, hedger) may hold
`instances: {<name>: {<keys of the section>}}`; `LS_INSTANCE=<name>` (top-level `instance`) runs
that instance: the section with its keys layered over it and `strategy: <name>` (attribution name,
consumer group, instance lock). Each instance is validated with the section's model
(`services.strategy-trend.instances.trend-eth.markts: unknown key`). See docs/runbook.md,
"Scaling out".
Secrets are never read from the file: the live API key comes only from `LIGHTER_API_PRIVATE_KEY`.
(Generated by `docs/gen_config_reference.py`.)
"""


def _table(model) -> str:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, f in model.model_fields.items():
        d = f.default if f.default_factory is None else f.default_factory()
        if hasattr(d, "model_dump"):
            d = d.model_dump()
        elif isinstance(d, dict):
            d = {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in d.items()}
        rows.append(f"| `{name}` | `{d!r}` | {MEANING[model].get(name, '')} |")
    return "\n".join(rows)


def render() -> str:
    """The whole page."""
    out = [HEAD, "## Top level", "", _table(StackConfig), "", "### `venue`", "", _table(VenueConfig),
           "", "### `screening`", "", _table(ScreeningConfig)]
    for name, model in SECTIONS:
        out += ["", f"## `services.{name}`", "", _table(model)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("configuration.md").write_text(render())
