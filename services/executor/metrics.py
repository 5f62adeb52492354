"""Prometheus metrics of the executor service (``lighter_stack_executor_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import PREFIX

_P = f"{PREFIX}executor_"
ORDERS_SENT = Counter(f"{_P}orders_sent_total", "Order transactions sent to the venue.", ["market", "side"])
REJECTS = Counter(f"{_P}rejects_total", "Orders rejected (code 0 = refused locally).", ["code"])
FILLS = Counter(f"{_P}fills_total", "Attributed fills published.", ["market", "liquidity"])
INTERNAL_CROSSES = Counter(f"{_P}internal_crosses_total", "Internal crosses between strategies.", ["market"])
NONCE_RESYNCS = Counter(f"{_P}nonce_resyncs_total", "Nonce resyncs from nextNonce after an error.")
RISK_STATE = Gauge(f"{_P}risk_state", "Risk state: 0 running, 1 reducing, 2 halted.")
ACCOUNT_POSITION = Gauge(f"{_P}account_position", "Account position (base units).", ["market"])
STRATEGY_POSITION = Gauge(f"{_P}strategy_position", "Virtual position per strategy (base units).",
                          ["strategy", "market"])
INTENTS = Counter(f"{_P}intents_total", "Intents consumed from the intent stream, per strategy and kind "
                  "(target_position, quote, resting_orders, cancel): the strategies' signals.", ["strategy", "kind"])
SEND_SECONDS = Histogram(f"{_P}send_seconds", "Wall time of one sendTx/sendTxBatch round trip.",
                         buckets=(1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0))
GUARD_ENGAGED = Gauge(f"{_P}guard_engaged", "1 while a guard blocks a side (max_position, max_notional, self_trade).",
                      ["guard", "market", "side"])
GUARD_ENGAGEMENTS = Counter(f"{_P}guard_engagements_total", "Times a guard engaged.", ["guard", "market", "side"])
SELF_TRADE_REFUSALS = Counter(f"{_P}self_trade_refusals_total",
                              "Resting orders refused because they would cross our own resting order.", ["market"])
REQUESTS = Counter(f"{_P}requests_total", "sendTx/sendTxBatch requests made.", ["endpoint"])
REQUESTS_PER_MINUTE = Gauge(f"{_P}requests_per_minute",
                            "sendTx/sendTxBatch requests in the rolling minute (engine, event time).")
BUDGET_USED = Gauge(f"{_P}budget_used", "Request weight used in the rolling minute (engine, event time).")
BUDGET_REMAINING = Gauge(f"{_P}budget_remaining", "Request weight left in the rolling minute (engine, event time).")
DEFERRED_UPDATES = Counter(f"{_P}deferred_updates_total",
                           "Quote/resting updates deferred for lack of request budget or during a 23000 back-off.")
SUPERSEDED_INTENTS = Counter(f"{_P}superseded_intents_total",
                             "Quote/resting intents skipped because a later one of the same strategy and market "
                             "in the same consumer batch replaces them.")
# engine counters (attribute -> metric) the runner carries over after each batch
ENGINE_COUNTERS = {"deferred_updates": DEFERRED_UPDATES, "superseded_intents": SUPERSEDED_INTENTS}
RATE_LIMITED_TOTAL = Counter(f"{_P}rate_limited_total", "Requests refused by the venue with 23000 (too many requests).")
STALE_RESOLVED = Counter(f"{_P}stale_orders_resolved_total",
                         "Stale orders (no final update within order_stale_s) resolved by a REST check: "
                         "filled, canceled (canceled/expired), unknown (finished unfilled), cancel_resent.",
                         ["how"])
RESTORED_INTENTS = Counter(f"{_P}restored_intents_total",
                           "Standing targets/resting wishes restored from the intent stream at start-up.")
RESTORED_CONTROLS = Counter(f"{_P}restored_controls_total",
                            "Operator Control events (kill/pause/resume/flatten) folded from the control stream "
                            "at start-up.")
VOLUME_QUOTA = Gauge(f"{_P}volume_quota_remaining", "volume_quota_remaining from the last sendTx/sendTxBatch response.")
#: ``RISK_STATE`` value of each risk state
STATE_VALUE = {"running": 0, "reducing": 1, "halted": 2}
PROTECTIVE_STOPS = Gauge(f"{_P}protective_stops", "Live executor-maintained protective stops (protective_stop).")
DEAD_MAN_UNTIL = Gauge(f"{_P}dead_man_switch_until_seconds",
                       "Wall time (unix s) of the scheduled cancel-all kept by dead_man_switch_s (0 = none armed).")
DEAD_MAN_FAILURES = Counter(f"{_P}dead_man_switch_failures_total",
                            "Scheduled cancel-all (dead-man switch) refreshes that failed.")
RECOVERED_FILLS = Counter(f"{_P}recovered_fills_total",
                          "Sides of venue trades not seen live (feed snapshot, REST trade history at start) that were "
                          "recovered: attributed (an order of ours), unattributed (an unknown order; Fill.reason says "
                          "why), seen (history from before anything of ours: only marked seen).", ["how"])
POSITION_MISMATCH = Gauge(f"{_P}position_mismatch",
                          "Venue account position minus the sum of the strategies' virtual positions (base units); "
                          "0 while they agree.", ["market"])
POSITION_MISMATCHES = Counter(f"{_P}position_mismatches_total",
                              "PositionMismatch events with a difference (found or changed).", ["market"])
