"""venue-sim's fault model: what can go wrong between Lighter and a client, injected on purpose.

:class:`FaultPlan` (the ``services: venue-sim: faults:`` section, also set at run time by
``POST /sim/fault``) gives each fault kind a probability per *opportunity* -- a chance for that
fault to happen (a book delta sent, a tx request received, ...); :class:`FaultInjector` decides,
counts and reports. The hooks that act on a decision are in
:mod:`services.venue_sim.fault_hooks` (WebSocket sender, HTTP middleware, tx path); the
restart that keeps the venue's state is :mod:`services.venue_sim.state`. docs/venue-sim.md
("Faults") says what a client sees for each kind.

Determinism: a decision is a pure function of ``(seed, kind, key)``:
``u = blake2b("seed:kind:key") / 2**64``, the fault happens when ``u < probability``. The key
is the book delta's ``(market, nonce)`` for the book faults (so every subscriber and every run
with the same deltas sees the same faults, whatever the connections), ``(connection ordinal,
updates sent to it)`` for ``ws_disconnect``, and the kind's opportunity counter (opportunities
seen while the kind was on) for the others. The same seed and the same sequence of
opportunities therefore give the same faults; kinds do not share a random stream, so switching
one on or off never moves another. ``arm(kind, n)`` (``POST /sim/fault/once``) makes the next
``n`` opportunities of a kind fault whatever the probabilities.

With every probability 0 and nothing armed (the default) nothing is decided or counted, and the
venue's behaviour and bytes are exactly those without this module.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.venue_sim.metrics import FAULTS

Probability = Field(default=0.0, ge=0.0, le=1.0)

WS_KINDS = ("ws_disconnect", "book_drop", "book_duplicate", "book_reorder", "account_delay", "account_duplicate")
"""Faults of the WebSocket sender (:meth:`~services.venue_sim.fault_hooks.FaultHooks.send_faulty`)."""
TX_KINDS = ("rate_limit", "http_5xx", "nonce_reject", "tx_timeout")
"""Faults of the REST/tx path (HTTP middleware, ``jsonapi/sendtx``, the nonce check)."""
FAULT_KINDS = WS_KINDS + TX_KINDS
"""Every probabilistic fault kind (a :class:`FaultPlan` field of the same name)."""
COUNTED_KINDS = FAULT_KINDS + ("restart",)
"""What ``GET /sim/fault`` counts: the kinds above plus restarts from the state file."""
ONCE_KINDS = FAULT_KINDS + ("restart",)
"""Kinds ``POST /sim/fault/once`` accepts (``ws_disconnect`` and ``restart`` act at once)."""


class FaultPlan(BaseModel):
    """Which faults venue-sim injects, and how often (all off by default).

    Every ``float`` field named after a fault kind is a probability in 0..1 per opportunity.

    Attributes:
        seed: the seed of every decision (module docstring).
        ws_disconnect: per channel update sent to a connection: the connection is cut instead.
        ws_disconnect_mode: ``abort`` (the TCP connection is dropped without a close frame: the
            client sees 1006/connection reset, as on a network cut) or ``close`` (close frame
            1001 "going away").
        book_drop: per ``update/order_book`` delta: not sent (the next one's ``begin_nonce``
            shows the gap).
        book_duplicate: per delta: sent twice.
        book_reorder: per delta: held back and sent right after the market's next delta (or
            1 s later without one).
        account_delay: per account-channel message (``account_*``, ``user_stats``,
            ``account_tx``, ``account_all_assets``): sent ``account_delay_ms`` later.
        account_delay_ms: the delay, wall ms.
        account_duplicate: per account-channel message: sent twice.
        http_scope: which REST requests the HTTP faults (``rate_limit``, ``http_5xx``) hit:
            ``tx`` (``sendTx``, ``sendTxBatch``) or ``api`` (every ``/api/v1/...`` request).
        rate_limit: per request in scope (and per ``jsonapi/sendtx(batch)``): refused with
            HTTP 429 ``{"code":23000,"message":"too many requests"}`` (WS: the reply with code
            23000), nothing processed.
        http_5xx: per REST request in scope: answered with an HTTP status of
            ``http_5xx_statuses`` and a plain-text body (a proxy's answer), nothing processed.
        http_5xx_statuses: the statuses drawn from (500..599).
        nonce_reject: per tx with the right nonce: refused with 21104 ``invalid nonce``, the
            nonce not used.
        tx_timeout: per accepted tx request (REST or WS): the txs are executed, but the answer
            never comes -- REST: after ``tx_timeout_ms`` the connection is closed
            (``tx_timeout_answer: close``) or HTTP 504 is answered (``504``); WS: no reply.
        tx_timeout_ms: wall ms before the REST connection is closed (or 504 answered).
        tx_timeout_answer: ``close`` or ``504``.
    """

    model_config = ConfigDict(extra="forbid")
    seed: int = 0
    ws_disconnect: float = Probability
    ws_disconnect_mode: Literal["abort", "close"] = "abort"
    book_drop: float = Probability
    book_duplicate: float = Probability
    book_reorder: float = Probability
    account_delay: float = Probability
    account_delay_ms: int = Field(default=1000, ge=0, le=600_000)
    account_duplicate: float = Probability
    http_scope: Literal["tx", "api"] = "tx"
    rate_limit: float = Probability
    http_5xx: float = Probability
    http_5xx_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503, 504], min_length=1)
    nonce_reject: float = Probability
    tx_timeout: float = Probability
    tx_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    tx_timeout_answer: Literal["close", "504"] = "close"

    @field_validator("http_5xx_statuses")
    @classmethod
    def _statuses(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 500 <= s <= 599]
        if bad:
            raise ValueError(f"HTTP statuses must be 500..599, not {bad}")
        return v


for _kind in COUNTED_KINDS:  # every kind shows in /metrics from the start, at 0
    FAULTS.labels(_kind)


def unit(seed: int, kind: str, key: Any) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, kind, key)`` (blake2b, 64 bits)."""
    digest = hashlib.blake2b(f"{seed}:{kind}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class FaultInjector:
    """Decides and counts faults for a :class:`FaultPlan` (pure: no I/O, no clock).

    Attributes:
        plan: the current plan.
        injected: faults injected per kind (:data:`COUNTED_KINDS`; also the Prometheus counter
            ``lighter_stack_venue_faults_total{kind}``).
        opportunities: opportunities seen per kind while the kind was on (probability > 0 or
            armed).
        armed: per kind, opportunities that will fault whatever the probability.
        ws_active, tx_active: some WebSocket / REST-tx fault is on (the hooks' fast path
            checks these, so an idle injector costs one attribute read).
        held: messages held back right now (reordered deltas, delayed account messages).
    """

    def __init__(self, plan: FaultPlan | None = None) -> None:
        self.plan = plan or FaultPlan()
        self.injected: dict[str, int] = dict.fromkeys(COUNTED_KINDS, 0)
        self.opportunities: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.armed: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.held = 0
        self.ws_active = False
        self.tx_active = False
        self._refresh()

    def _refresh(self) -> None:
        def on(kind: str) -> bool:
            return getattr(self.plan, kind) > 0 or self.armed[kind] > 0

        self.ws_active = any(on(k) for k in WS_KINDS) or self.held > 0
        self.tx_active = any(on(k) for k in TX_KINDS)

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan (counters and armed faults are kept)."""
        self.plan = plan
        self._refresh()

    def merged(self, changes: dict[str, Any]) -> FaultPlan:
        """The current plan with ``changes`` (field -> value) applied, validated.

        Raises:
            pydantic.ValidationError: an unknown field or a bad value (the error names it).
        """
        return FaultPlan.model_validate({**self.plan.model_dump(), **changes})

    def arm(self, kind: str, count: int = 1) -> None:
        """Make the next ``count`` opportunities of ``kind`` fault.

        Raises:
            ValueError: not a kind of :data:`FAULT_KINDS`, or ``count`` < 1.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(FAULT_KINDS)}")
        if count < 1:
            raise ValueError("count must be >= 1")
        self.armed[kind] += count
        self._refresh()

    def on(self, kind: str) -> bool:
        """True when ``kind`` can fault now (probability > 0 or armed)."""
        return getattr(self.plan, kind) > 0 or self.armed[kind] > 0

    def roll(self, kind: str, key: Any = None) -> bool:
        """One opportunity of ``kind``: True when it faults (then counted as injected).

        Args:
            kind: a kind of :data:`FAULT_KINDS`.
            key: what fixes the decision (module docstring); None = the kind's opportunity
                counter.
        """
        p = getattr(self.plan, kind)
        if p <= 0 and not self.armed[kind]:
            return False
        n = self.opportunities[kind]
        self.opportunities[kind] = n + 1
        if self.armed[kind]:
            self.armed[kind] -= 1
            self._refresh()
            hit = True
        else:
            hit = unit(self.plan.seed, kind, n if key is None else key) < p
        if hit:
            self.count(kind)
        return hit

    def count(self, kind: str) -> None:
        """Count one injected fault of ``kind`` (here and in Prometheus)."""
        self.injected[kind] += 1
        FAULTS.labels(kind).inc()

    def status_5xx(self) -> int:
        """The HTTP status of the next ``http_5xx`` fault (drawn from ``http_5xx_statuses``,
        fixed by the seed and the fault's count)."""
        statuses = self.plan.http_5xx_statuses
        return statuses[int(unit(self.plan.seed, "http_5xx_status", self.injected["http_5xx"]) * len(statuses))]

    def hold(self, n: int = 1) -> None:
        """``n`` messages were held back (:attr:`held`)."""
        self.held += n
        self._refresh()

    def release(self, n: int = 1) -> None:
        """``n`` held messages were sent (or dropped with their connection)."""
        self.held = max(0, self.held - n)
        self._refresh()

    def status(self) -> dict[str, Any]:
        """Body of ``GET /sim/fault``: ``plan``, ``injected``, ``opportunities``, ``armed``,
        ``held``."""
        return {"plan": self.plan.model_dump(), "injected": dict(self.injected),
                "opportunities": dict(self.opportunities), "armed": {k: v for k, v in self.armed.items() if v},
                "held": self.held}

    # ---------------------------------------------------------------- persistence

    def counters(self) -> dict[str, dict[str, int]]:
        """What a restart keeps (:mod:`services.venue_sim.state`): ``injected`` and
        ``opportunities`` (so decisions keyed by the opportunity counter continue, not
        repeat)."""
        return {"injected": dict(self.injected), "opportunities": dict(self.opportunities)}

    def restore_counters(self, saved: dict[str, dict[str, int]]) -> None:
        """Continue the counters of :meth:`counters` (unknown kinds ignored)."""
        for name, target in (("injected", self.injected), ("opportunities", self.opportunities)):
            for k, v in saved.get(name, {}).items():
                if k in target:
                    target[k] = int(v)
