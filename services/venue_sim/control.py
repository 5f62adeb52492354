"""venue-sim: sim control endpoints (``GET /sim/status``, ``POST /sim/start``, ``GET /sim/fills``),
``/health`` and ``/metrics``.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.venue_sim.base import ServerBase
from services.venue_sim.metrics import REPLAYED, SIM_TIME
from shared.venue.matching import BOOK_ACCOUNT


class SimControl(ServerBase):
    """Sim control, health and metrics endpoints."""

    def status(self) -> dict[str, Any]:
        """Body of ``GET /sim/status``."""
        now = self.clock()
        SIM_TIME.set(now / 1e9)
        extra = self.status_extra()
        REPLAYED.set(extra.get("events_replayed", 0))
        return {
            "state": extra.get("state", "running"), "events_replayed": extra.get("events_replayed", 0),
            "total_events": extra.get("total_events"), "sim_time_ns": now,
            "sim_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now / 1e9)) if now else None,
            "fills": len(self.engine.fills), "pending_txs": self.engine.pending_count(),
            "self_trade_cancels": len(self.engine.self_trade_cancels),
            "rate_limit": {"enabled": self.meter.enabled, "limit_per_min": self.meter.limit,
                           "request_weight": self.meter.weight},
            "accounts": self.account_status(), "reads_by_ip": self.meter.read_status(),
            "depth_assumption": self.engine.depth_assumption, "subscribers": self.subscribers(),
            "ws_clients": len(self.clients),
            "markets": {m.symbol: m.market_id for m in self.markets.values()},
            "tier": msgspec.to_builtins(self.engine.tier), "maker_fee": self.engine.maker_fee,
            "taker_fee": self.engine.taker_fee, "faults": dict(self.faults.injected),
            **({"state_file": self.state_store.status()} if self.state_store is not None else {}),
            **{k: v for k, v in extra.items() if k not in ("state", "events_replayed", "total_events")},
        }

    def account_status(self) -> dict[str, dict[str, int]]:
        """Per account that sent txs or traded (key: the account index as a string):
        ``requests``, ``txs``, ``weight_total``, ``max_requests_per_min``, ``rate_limited``
        (see :meth:`ratelimit.RequestMeter.status`), ``fills`` (fills with the account on
        either side), ``self_trade_fills`` (the account on both sides of one fill; 0 while
        self-trade prevention works) and ``self_trade_cancels`` (its resting orders canceled
        to prevent a self-trade)."""
        blank = {"requests": 0, "txs": 0, "weight_total": 0, "max_requests_per_min": 0, "rate_limited": 0,
                 "fills": 0, "self_trade_fills": 0, "self_trade_cancels": 0}
        out = {str(a): dict(blank) for a in self.engine.accounts}
        for acct, row in self.meter.status().items():
            out.setdefault(acct, dict(blank)).update(row)
        for f in self.engine.fills:
            for acct in {f.taker_account, f.maker_account} - {BOOK_ACCOUNT}:
                row = out.setdefault(str(acct), dict(blank))
                row["fills"] += 1
                row["self_trade_fills"] += f.taker_account == f.maker_account
        for o in self.engine.self_trade_cancels:
            out.setdefault(str(o.account), dict(blank))["self_trade_cancels"] += 1
        return dict(sorted(out.items(), key=lambda kv: int(kv[0])))

    async def h_status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def h_start(self, _request: web.Request) -> web.Response:
        self.on_start()
        return web.json_response(self.status())

    async def h_fills(self, _request: web.Request) -> web.Response:
        return web.Response(body=msgspec.json.encode(self.engine.fills), content_type="application/json")

    async def h_health(self, _request: web.Request) -> web.Response:
        """``GET /health``: 200 ``ok``; with the live source 503 ``degraded`` while the upstream
        feed is down (body with ``upstream``: connected, reconnects, down_for_s, last_error)."""
        s = self.status_extra()
        status = s.get("health", "ok")
        body = {"status": status, "service": "venue-sim", "state": s.get("state"),
                "events_replayed": s.get("events_replayed", 0),
                "uptime_s": round(time.time() - self.started_wall, 1)}
        if "upstream" in s:
            body["source"] = "live"
            body["upstream"] = s["upstream"]
        return web.json_response(body, status=200 if status == "ok" else 503)

    async def h_metrics(self, _request: web.Request) -> web.Response:
        self.status()  # refresh gauges
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
