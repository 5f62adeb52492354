"""Prometheus metrics of venue-sim (``lighter_stack_venue_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from shared.metrics import PREFIX

ORDERS = Counter(f"{PREFIX}venue_orders_total", "Create-order txs accepted by venue-sim.", ["market", "type", "tif"])
FILLS = Counter(f"{PREFIX}venue_fills_total", "Fills executed by venue-sim.", ["market", "liquidity"])
REJECTS = Counter(f"{PREFIX}venue_rejects_total", "Txs refused by venue-sim, by Lighter error code.", ["code"])
TXS = Counter(f"{PREFIX}venue_txs_total", "Txs accepted by venue-sim, by tx type.", ["tx_type"])
ORDER_STATUS = Counter(f"{PREFIX}venue_order_final_total", "Orders that left the book, by final status.",
                       ["status"])
REPLAYED = Gauge(f"{PREFIX}venue_replayed_events", "Recorded events replayed so far.")
SIM_TIME = Gauge(f"{PREFIX}venue_sim_time_seconds", "Venue clock (wall time; the recording's in lockstep), Unix seconds.")
WS_CLIENTS = Gauge(f"{PREFIX}venue_ws_clients", "Connected WebSocket clients.")
SELF_TRADES = Counter(f"{PREFIX}venue_self_trade_cancels_total", "Resting orders canceled to prevent a self-trade.")
FAULTS = Counter(f"{PREFIX}venue_faults_total", "Faults injected by venue-sim (docs/venue-sim.md, Faults), by kind.",
                 ["kind"])
STATE_WRITES = Counter(f"{PREFIX}venue_state_writes_total", "State-file snapshots written by venue-sim.")
