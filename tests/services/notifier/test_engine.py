"""The notifier engine: which events become which notices, FIFO PnL on close, the daily summary
by event time, the answers to /status and /pnl, Alertmanager payloads."""

from __future__ import annotations

import pytest

from services.notifier.engine import BadAlertPayload, NotifierEngine, alert_notices
from shared.events import Control, Fill, GuardState, OrderRejected, PositionSnapshot, RiskState

DAY = 86_400 * 10**9
T0 = 1_757_894_400 * 10**9 + 3600 * 10**9  # 2025-09-15 01:00 UTC


def fill(i: int, side: str, size: float, price: float, ts: int = T0, fee: float = 0.0, strategy: str = "trend",
         reason: str = "") -> Fill:
    return Fill(id=f"f{i}", ts_event=ts + i, fill_id=f"fill{i}", strategy=strategy, market="BTC", side=side,
                price=price, size=size, fee=fee, reason=reason)


def test_open_add_reduce_close_with_fifo_pnl() -> None:
    e = NotifierEngine()
    (n,) = e.on_event(fill(1, "buy", 0.01, 100_000.0, fee=0.2, reason="signal"))
    assert n.kind == "opened" and "Opened long" in n.text and "(signal)" in n.text
    (n,) = e.on_event(fill(2, "buy", 0.01, 101_000.0))
    assert n.kind == "opened" and "Added long" in n.text
    # FIFO: closes the 100k lot first: (102k - 100k) x 0.01 = 20, minus the entry fee 0.2 and exit fee 0.1
    (n,) = e.on_event(fill(3, "sell", 0.01, 102_000.0, fee=0.1, reason="take profit"))
    assert n.kind == "closed" and "Reduced long" in n.text and "+19.70 USD" in n.text and "take profit" in n.text
    (n,) = e.on_event(fill(4, "sell", 0.01, 100_500.0))
    assert "Closed long" in n.text and "-5.00 USD" in n.text
    assert e.realized_total == {"trend": pytest.approx(14.7)}


def test_a_flip_is_a_close_and_an_open() -> None:
    e = NotifierEngine()
    e.on_event(fill(1, "buy", 1.0, 10.0))
    out = e.on_event(fill(2, "sell", 3.0, 12.0))
    assert [n.kind for n in out] == ["closed", "opened"]
    assert "+2.00 USD" in out[0].text and "Opened short" in out[1].text and "position -2" in out[1].text


def test_rejects_venue_and_send_failures_always_local_ones_on_request() -> None:
    def rej(code: int) -> OrderRejected:
        return OrderRejected(id=f"r{code}", ts_event=T0, strategy="grid", market="ETH", client_order_index=0,
                             side="buy", price=4000.0, size=0.01, code=code, reason="why <not>")
    e = NotifierEngine()
    assert e.on_event(rej(0)) == [] and e.on_event(rej(1)) == []
    (n,) = e.on_event(rej(21706))
    assert n.kind == "reject" and "venue, code 21706" in n.text and "why &lt;not&gt;" in n.text
    assert e.on_event(rej(-1))[0].text.count("send failed") == 1
    assert NotifierEngine(notify_local_rejects=True).on_event(rej(0))[0].kind == "reject"


def test_guards_notify_changes_only() -> None:
    def g(engaged: bool, i: int) -> GuardState:
        return GuardState(id=f"g{i}", ts_event=T0 + i, guard="max_position", market="BTC", side="buy",
                          engaged=engaged, position=0.05, limit=0.05, reason="limit reached")
    e = NotifierEngine()
    (n,) = e.on_event(g(True, 1))
    assert "Guard engaged" in n.text and "max_position BTC buy" in n.text
    assert e.on_event(g(True, 2)) == []  # no change
    assert "Guard released" in e.on_event(g(False, 3))[0].text
    quiet = NotifierEngine(notify_guard_release=False)
    quiet.on_event(g(True, 1))
    assert quiet.on_event(g(False, 2)) == []


def test_kill_switch_control_and_risk_state() -> None:
    e = NotifierEngine()
    assert e.on_event(RiskState(id="r0", ts_event=T0, state="running")) == []  # the first running is news to nobody
    (c,) = e.on_event(Control(id="c1", ts_event=T0 + 1, source="notifier", command="kill", reason="telegram /kill"))
    assert c.kind == "control" and "KILL switch" in c.text
    (r,) = e.on_event(RiskState(id="r1", ts_event=T0 + 2, state="halted", reason="kill switch: telegram /kill"))
    assert r.kind == "risk" and "HALTED" in r.text and "kill switch" in r.text
    assert e.on_event(RiskState(id="r2", ts_event=T0 + 3, state="halted", reason="kill switch: telegram /kill")) == []
    e.on_event(Control(id="c2", ts_event=T0 + 4, command="pause", target="grid"))
    assert "paused: grid" in e.status_text() and "executor halted" in e.status_text()
    e.on_event(Control(id="c3", ts_event=T0 + 5, command="resume", target="*"))
    assert "paused" not in e.status_text()


def test_daily_summary_by_event_time() -> None:
    e = NotifierEngine(summary_utc_hour=0)
    e.on_event(fill(1, "buy", 1.0, 10.0, fee=0.01))
    e.on_event(fill(2, "sell", 1.0, 11.0, fee=0.01, strategy="trend"))
    e.on_event(fill(3, "buy", 2.0, 5.0, strategy="grid"))
    assert not [n for n in e.on_event(PositionSnapshot(id="p", ts_event=T0 + 10, strategy="grid", market="BTC",
                                                       position=2.0)) if n.kind == "summary"]
    out = e.on_event(RiskState(id="r", ts_event=T0 + DAY, state="running"))
    (s,) = [n for n in out if n.kind == "summary"]
    assert "2025-09-15 00:00:00 UTC" in s.text and "trend: realized +0.98 USD, 2 fills" in s.text
    assert "grid: realized +0.00 USD, 1 fills" in s.text and "open grid BTC 2" in s.text
    # a new day without fills yields no summary the day after
    assert not [n for n in e.on_event(RiskState(id="r2", ts_event=T0 + 2 * DAY, state="halted")) if n.kind == "summary"]
    assert "today +0.00" in e.pnl_text() and "since start +0.98" in e.pnl_text()


def test_summary_hour_moves_the_day_boundary() -> None:
    e = NotifierEngine(summary_utc_hour=2)  # T0 is 01:00: still the day that started yesterday 02:00
    e.on_event(fill(1, "buy", 1.0, 10.0))
    assert not e.on_event(RiskState(id="r", ts_event=T0 + 30 * 60 * 10**9, state="running"))
    out = e.on_event(RiskState(id="r2", ts_event=T0 + 2 * 3600 * 10**9, state="halted"))
    assert [n.kind for n in out] == ["summary", "risk"] and "2025-09-14 02:00:00 UTC" in out[0].text


def test_alertmanager_payload() -> None:
    payload = {"status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "ServiceDown", "severity": "critical", "service": "executor"},
         "annotations": {"summary": "executor /metrics not answering"}},
        {"status": "resolved", "labels": {"alertname": "ConsumerLagging", "service": "ledger"}, "annotations": {}}]}
    a, b = alert_notices(payload)
    assert a.text == ("<b>FIRING</b> ServiceDown [critical] service=executor: executor /metrics not answering")
    assert b.text.startswith("<b>RESOLVED</b> ConsumerLagging")
    for bad in ([], {"alerts": "x"}, {"alerts": [{"labels": 3}]}):
        with pytest.raises(BadAlertPayload):
            alert_notices(bad)
