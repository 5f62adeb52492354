"""``lighter-stack demo --copytrade``: drive the demo's copy-trade API during the replay.

A fixed script of requests, each sent once the replay has reached its fraction of the recorded
events, to the copytrade service of the run (its port from the demo): open a long in the first
market, add to it, reduce it, then close it; open a short in the second market and close it.
Every request carries its own ``request_id`` (``demo-<n>``) and is sent twice, which must not
trade twice (idempotency). :meth:`CopytradeDriver.report` lists what became of each request
(``GET /api/trade/{request_id}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

#: (fraction of the replay, endpoint, body without account/market); ``market`` is 0 or 1 (index in the
#: recording's markets). The last request is due at 55 %: the executor re-tries an unfilled part of a
#: target only on market data, so the closes need recorded time after them.
SCRIPT: list[tuple[float, str, dict[str, Any]]] = [
    (0.05, "/api/trade", {"market": 0, "trade_type": "long", "reference_position_ratio": 0.002}),
    (0.15, "/api/trade/adjust", {"market": 0, "adjustment_type": "increase", "percentage": 0.5}),
    (0.25, "/api/trade", {"market": 1, "trade_type": "short", "reference_position_ratio": 0.002}),
    (0.35, "/api/trade/adjust", {"market": 0, "adjustment_type": "decrease", "percentage": 0.5}),
    (0.45, "/api/trade", {"market": 1, "trade_type": "close"}),
    (0.55, "/api/trade", {"market": 0, "trade_type": "close"}),
]


@dataclass
class CopytradeDriver:
    """Sends :data:`SCRIPT` to ``http://127.0.0.1:<port>`` as the replay progresses.

    Args:
        port: the copytrade service's port.
        account: the account to trade.
        symbols: the recording's market symbols (the script's ``market`` indexes them).
    """

    port: int
    account: int
    symbols: list[str]
    sent: list[str] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        """The API's base URL."""
        return f"http://127.0.0.1:{self.port}"

    async def step(self, http: aiohttp.ClientSession, fraction: float) -> None:
        """Send every request due at ``fraction`` (0..1) of the replay not yet sent.

        Raises:
            RuntimeError: the API refused a request or answered a repeat differently.
        """
        for n, (at, path, spec) in enumerate(SCRIPT):
            rid = f"demo-{n}"
            if at > fraction or rid in self.sent:
                continue
            body = {k: v for k, v in spec.items() if k != "market"}
            body.update(account_index=self.account, request_id=rid,
                        symbol=self.symbols[min(spec["market"], len(self.symbols) - 1)])
            first = await self._post(http, path, body)
            again = await self._post(http, path, body)  # a retry: must be answered alike, never traded twice
            if again["request_id"] != first["request_id"] or not again["duplicate"]:
                raise RuntimeError(f"copytrade: a repeated request was not recognised: {again}")
            self.sent.append(rid)
            self.answers.append(first)

    async def _post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with http.post(self.base + path, json=body, timeout=aiohttp.ClientTimeout(total=10)) as r:
            out = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"copytrade {path} -> HTTP {r.status}: {out}")
            return out

    async def report(self, http: aiohttp.ClientSession) -> list[dict[str, Any]]:
        """What became of each sent request: ``{request_id, status, target, detail}``."""
        out = []
        for rid in self.sent:
            async with http.get(f"{self.base}/api/trade/{rid}", timeout=aiohttp.ClientTimeout(total=10)) as r:
                st = await r.json(content_type=None)
            out.append({k: st.get(k) for k in ("request_id", "market", "status", "target", "detail")})
        return out
