"""The notifier's pure engine: exec and control events in, notices (message parts) out.

No I/O, no wall clock: time comes from ``ts_event`` (ns). The engine folds

- fills through the FIFO lot fold of :mod:`shared.fifo` (the ledger's rule): a fill that opens or
  adds to a position is an *opened* notice, one that closes lots a *closed* notice with the FIFO
  PnL of the closed lots (USD, net of the entry and exit fee shares); a flip gives both;
- ``PositionSnapshot``: the strategies' and the account's positions (for ``/status``);
- ``OrderRejected``: a *reject* notice (venue codes >= 21000 and send failures -1; the executor's
  local refusals 0/1 only with ``notify_local_rejects``);
- ``GuardState``: *guard* notices when a guard engages (and releases);
- ``RiskState``: *risk* notices on a change of the executor's state (the kill switch: ``halted``);
- ``Control``: *control* notices (the operator's command as written to ``{ns}:control``), and
  the paused strategies;
- the daily PnL summary: days start at ``summary_utc_hour`` UTC, by event time; the first event of
  a new day emits the summary of the last day that had fills (realized FIFO PnL per strategy,
  fill count, open positions).

Alertmanager's webhook payloads become *alert* notices through :func:`alert_notices`.
Text is Telegram HTML (``parse_mode=HTML``: every value escaped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from shared.events import Control, Event, Fill, GuardState, OrderRejected, PositionSnapshot, RiskState
from shared.fifo import ClosedTrade, InvalidFill, LedgerEngine

NS_PER_S = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_S
EPS = 1e-12


@dataclass(frozen=True, slots=True)
class Notice:
    """One part of a Telegram message: ``kind`` (``opened``, ``closed``, ``reject``, ``guard``,
    ``risk``, ``control``, ``summary``, ``alert``), ``text`` (Telegram HTML), ``ts_event`` (ns;
    0 for alerts)."""

    kind: str
    text: str
    ts_event: int = 0


@dataclass(slots=True)
class DayStats:
    """Realized FIFO PnL (USD, net of fees) and fill counts per strategy within one day."""

    day: int
    realized: dict[str, float] = field(default_factory=dict)
    fills: dict[str, int] = field(default_factory=dict)
    fees: dict[str, float] = field(default_factory=dict)


def fmt_ts(ts_ns: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC of a time in ns."""
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def fmt_usd(x: float) -> str:
    """Signed USD with 2 decimals (``+1.23``, ``-0.40``)."""
    return f"{x:+,.2f}"


def fmt_num(x: float) -> str:
    """A size or price with up to 8 significant digits, no exponent for usual values."""
    return f"{x:,.8g}" if abs(x) >= 1e-4 or x == 0 else f"{x:.3e}"


class NotifierEngine:
    """The fold (see the module docstring).

    Args:
        notify_local_rejects: notify local refusals (codes 0, 1) too.
        notify_guard_release: notify guard releases, not only engagements.
        summary_utc_hour: hour (UTC) at which a summary day starts.
    """

    def __init__(self, notify_local_rejects: bool = False, notify_guard_release: bool = True,
                 summary_utc_hour: int = 0) -> None:
        self.notify_local_rejects = notify_local_rejects
        self.notify_guard_release = notify_guard_release
        self.day_offset_ns = summary_utc_hour * 3600 * NS_PER_S
        self.fifo = LedgerEngine()
        self.positions: dict[tuple[str, str], tuple[float, float]] = {}  # (strategy, market) -> (pos, avg entry)
        self.account_positions: dict[str, float] = {}
        self.risk_state = "unknown"
        self.risk_reason = ""
        self.guards: dict[tuple[str, str, str], GuardState] = {}  # (guard, market, side) engaged
        self.paused: set[str] = set()
        self.realized_total: dict[str, float] = {}
        self.day: DayStats | None = None
        self.last_ts = 0
        self.events = 0
        self.invalid_fills = 0

    # -- the fold ---------------------------------------------------------------------------

    def on_event(self, ev: Event) -> list[Notice]:
        """Fold one event; returns its notices (possibly none), the day's summary first when
        ``ev`` starts a new summary day after a day with fills."""
        self.events += 1
        out: list[Notice] = []
        if ev.ts_event > 0:
            out.extend(self._roll_day(ev.ts_event))
            self.last_ts = max(self.last_ts, ev.ts_event)
        if isinstance(ev, Fill):
            out.extend(self._on_fill(ev))
        elif isinstance(ev, PositionSnapshot):
            key = (ev.strategy, ev.market)
            if abs(ev.position) > EPS:
                self.positions[key] = (ev.position, ev.avg_entry_price)
            else:
                self.positions.pop(key, None)
            self.account_positions[ev.market] = ev.account_position
        elif isinstance(ev, OrderRejected):
            out.extend(self._on_reject(ev))
        elif isinstance(ev, GuardState):
            out.extend(self._on_guard(ev))
        elif isinstance(ev, RiskState):
            out.extend(self._on_risk(ev))
        elif isinstance(ev, Control):
            out.extend(self._on_control(ev))
        return out

    def _day_of(self, ts_ns: int) -> int:
        return (ts_ns - self.day_offset_ns) // NS_PER_DAY

    def _roll_day(self, ts_ns: int) -> list[Notice]:
        day = self._day_of(ts_ns)
        if self.day is None:
            self.day = DayStats(day)
            return []
        if day <= self.day.day:
            return []
        done, self.day = self.day, DayStats(day)
        if not done.fills:
            return []
        return [Notice("summary", self.summary_text(done), ts_ns)]

    def _on_fill(self, f: Fill) -> list[Notice]:
        key = (f.strategy, f.market)
        before = self.fifo.position(*key)
        try:
            closed = self.fifo.apply_fill(f)
        except InvalidFill:
            self.invalid_fills += 1
            return []
        after = self.fifo.position(*key)
        assert self.day is not None
        d = self.day
        d.fills[f.strategy] = d.fills.get(f.strategy, 0) + 1
        d.fees[f.strategy] = d.fees.get(f.strategy, 0.0) + f.fee
        out: list[Notice] = []
        if closed:
            pnl = sum(c.pnl_usd for c in closed)
            d.realized[f.strategy] = d.realized.get(f.strategy, 0.0) + pnl
            self.realized_total[f.strategy] = self.realized_total.get(f.strategy, 0.0) + pnl
            out.append(Notice("closed", self._closed_text(f, closed, after), f.ts_event))
        opened = abs(after) > EPS and (abs(before) <= EPS or (after > 0) != (before > 0) or abs(after) > abs(before))
        if opened:
            out.append(Notice("opened", self._opened_text(f, before, after), f.ts_event))
        return out

    def _opened_text(self, f: Fill, before: float, after: float) -> str:
        lots = self.fifo.open_lots(f.strategy, f.market)
        size = sum(lot.size for lot in lots)
        avg = sum(lot.price * lot.size for lot in lots) / size if size > 0 else f.price
        verb = "Opened" if abs(before) <= EPS or (after > 0) != (before > 0) else "Added"
        side = "long" if after > 0 else "short"
        why = f" ({escape(f.reason)})" if f.reason else ""
        return (f"<b>{verb} {side}</b> {escape(f.strategy)} {escape(f.market)}: {f.side} {fmt_num(f.size)} @ "
                f"{fmt_num(f.price)} {escape(f.liquidity)}{why}; position {fmt_num(after)} avg {fmt_num(avg)}")

    @staticmethod
    def _closed_text(f: Fill, closed: list[ClosedTrade], after: float) -> str:
        pnl = sum(c.pnl_usd for c in closed)
        size = sum(c.size for c in closed)
        entry = sum(c.entry_price * c.size for c in closed) / size
        notional = entry * size
        pct = pnl / notional * 100.0 if notional > 0 else 0.0
        why = f" ({escape(f.reason)})" if f.reason else ""
        verb = "Closed" if abs(after) <= EPS or (after > 0) != (closed[0].side == "long") else "Reduced"
        return (f"<b>{verb} {closed[0].side}</b> {escape(f.strategy)} {escape(f.market)}: {fmt_num(size)} "
                f"entry {fmt_num(entry)} exit {fmt_num(f.price)}{why}; PnL <b>{fmt_usd(pnl)} USD</b> "
                f"({pct:+.2f}%); position {fmt_num(after)}")

    def _on_reject(self, ev: OrderRejected) -> list[Notice]:
        if ev.code in (0, 1) and not self.notify_local_rejects:
            return []
        where = "venue" if ev.code >= 21000 else ("send failed" if ev.code == -1 else "executor")
        return [Notice("reject", f"<b>Rejected</b> ({where}, code {ev.code}) {escape(ev.strategy)} "
                                 f"{escape(ev.market)} {ev.side} {fmt_num(ev.size)} @ {fmt_num(ev.price)}: "
                                 f"{escape(ev.reason)}", ev.ts_event)]

    def _on_guard(self, ev: GuardState) -> list[Notice]:
        key = (ev.guard, ev.market, ev.side)
        was = key in self.guards
        if ev.engaged:
            self.guards[key] = ev
        else:
            self.guards.pop(key, None)
        if ev.engaged == was or (not ev.engaged and not self.notify_guard_release):
            return []
        limit = f", limit {fmt_num(ev.limit)}" if ev.limit else ""
        why = f": {escape(ev.reason)}" if ev.reason else ""
        title = "Guard engaged" if ev.engaged else "Guard released"
        return [Notice("guard", f"<b>{title}</b> {ev.guard} {escape(ev.market)} {ev.side} side "
                                f"(position {fmt_num(ev.position)}{limit}){why}", ev.ts_event)]

    def _on_risk(self, ev: RiskState) -> list[Notice]:
        if (ev.state, ev.reason) == (self.risk_state, self.risk_reason):
            return []
        first = self.risk_state == "unknown"
        self.risk_state, self.risk_reason = ev.state, ev.reason
        if first and ev.state == "running":
            return []
        title = {"halted": "Executor HALTED", "reducing": "Executor reducing only",
                 "running": "Executor running"}[ev.state]
        why = f": {escape(ev.reason)}" if ev.reason else ""
        return [Notice("risk", f"<b>{title}</b>{why}", ev.ts_event)]

    def _on_control(self, ev: Control) -> list[Notice]:
        if ev.command == "pause":
            self.paused.add(ev.target)
        elif ev.command == "resume":
            if ev.target == "*":
                self.paused.clear()
            else:
                self.paused.discard(ev.target)
        title = "KILL switch" if ev.command == "kill" else f"Control {ev.command}"
        why = f" ({escape(ev.reason)})" if ev.reason else ""
        return [Notice("control", f"<b>{title}</b> {escape(ev.target)} by {escape(ev.source or '?')}{why}",
                       ev.ts_event)]

    # -- answers (commands) -----------------------------------------------------------------

    def summary_text(self, d: DayStats) -> str:
        """The daily summary of ``d``: realized PnL and fills per strategy, open positions."""
        start = d.day * NS_PER_DAY + self.day_offset_ns
        lines = [f"<b>Daily PnL</b> {fmt_ts(start)} UTC + 24h (event time)"]
        for s in sorted(set(d.fills) | set(d.realized)):
            lines.append(f"{escape(s)}: realized {fmt_usd(d.realized.get(s, 0.0))} USD, "
                         f"{d.fills.get(s, 0)} fills, fees {d.fees.get(s, 0.0):.2f}")
        lines.append(f"total realized <b>{fmt_usd(sum(d.realized.values()))} USD</b>")
        lines.extend(self._position_lines())
        return "\n".join(lines)

    def _position_lines(self) -> list[str]:
        out = []
        for (s, m), pos in sorted(self.fifo.positions().items()):
            if abs(pos) > EPS:
                out.append(f"open {escape(s)} {escape(m)} {fmt_num(pos)}")
        return out

    def status_text(self) -> str:
        """Answer to ``/status``: executor state, pauses, engaged guards, positions, last event."""
        why = f" ({escape(self.risk_reason)})" if self.risk_reason else ""
        lines = [f"<b>Status</b> executor {self.risk_state}{why}"]
        if self.paused:
            lines.append("paused: " + ", ".join(escape(p) for p in sorted(self.paused)))
        for g in self.guards.values():
            lines.append(f"guard {g.guard} {escape(g.market)} {g.side} engaged")
        for (s, m), (pos, avg) in sorted(self.positions.items()):
            lines.append(f"{escape(s)} {escape(m)} {fmt_num(pos)} avg {fmt_num(avg)}")
        for m, pos in sorted(self.account_positions.items()):
            lines.append(f"account {escape(m)} {fmt_num(pos)}")
        if not self.positions:
            lines.append("no strategy position")
        lines.append(f"last event {fmt_ts(self.last_ts) + ' UTC' if self.last_ts else 'none'}; "
                     f"{self.events} events folded")
        return "\n".join(lines)

    def pnl_text(self) -> str:
        """Answer to ``/pnl``: today's (event time) and the folded history's realized FIFO PnL."""
        d = self.day or DayStats(0)
        lines = ["<b>PnL</b> realized FIFO, net of fees (USD)"]
        for s in sorted(set(self.realized_total) | set(d.fills)):
            lines.append(f"{escape(s)}: today {fmt_usd(d.realized.get(s, 0.0))} ({d.fills.get(s, 0)} fills), "
                         f"since start {fmt_usd(self.realized_total.get(s, 0.0))}")
        lines.append(f"today {fmt_usd(sum(d.realized.values()))}, since start "
                     f"{fmt_usd(sum(self.realized_total.values()))}")
        lines.extend(self._position_lines())
        return "\n".join(lines)


class BadAlertPayload(ValueError):
    """An Alertmanager webhook body that is not the documented shape; the message says what."""


def alert_notices(payload: Any) -> list[Notice]:
    """Notices of one Alertmanager webhook payload (version 4: ``{"status", "alerts": [{"status",
    "labels", "annotations", "startsAt", ...}], ...}``): one per alert, ``FIRING`` or ``RESOLVED``
    with its name, severity, ``service``/``market`` labels and summary annotation.

    Raises:
        BadAlertPayload: not a JSON object with an ``alerts`` list of objects with ``labels``.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise BadAlertPayload("expected a JSON object with an 'alerts' list")
    out = []
    for i, a in enumerate(payload["alerts"]):
        if not isinstance(a, dict) or not isinstance(a.get("labels"), dict):
            raise BadAlertPayload(f"alerts[{i}]: expected an object with 'labels'")
        labels = {str(k): str(v) for k, v in a["labels"].items()}
        ann = a.get("annotations") if isinstance(a.get("annotations"), dict) else {}
        status = str(a.get("status") or payload.get("status") or "firing")
        name = labels.get("alertname", "alert")
        extra = ", ".join(f"{k}={escape(labels[k])}" for k in ("service", "market", "guard", "side", "stream")
                          if k in labels)
        sev = labels.get("severity", "")
        head = "FIRING" if status == "firing" else "RESOLVED"
        text = f"<b>{head}</b> {escape(name)}" + (f" [{escape(sev)}]" if sev else "") + (f" {extra}" if extra else "")
        summary = ann.get("summary") or ann.get("description") or ""
        if summary:
            text += f": {escape(str(summary))}"
        out.append(Notice("alert", text, 0))
    return out

