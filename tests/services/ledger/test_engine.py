"""The pure FIFO engine: partial closes, flips, shorts FIFO, fees, pnl_pct, invariants."""

import random

import pytest

from services.ledger.engine import InvalidFill, LedgerEngine
from shared.events import Bbo, Fill

T0 = 1_757_894_400_000_000_000  # 2025-09-15 00:00 UTC in ns


def fill(i: int, side: str, price: float, size: float, fee: float = 0.0, strategy: str = "s",
         market: str = "BTC", liquidity: str = "taker") -> Fill:
    return Fill(id=f"e{i}", ts_event=T0 + i * 1_000_000_000, fill_id=f"f{i}", strategy=strategy, market=market,
                side=side, price=price, size=size, fee=fee, liquidity=liquidity,
                venue_trade_id="" if liquidity == "internal" else f"v{i}")


def test_partial_closes_across_lots_and_flip_through_zero():
    e = LedgerEngine()
    assert e.apply_fill(fill(1, "buy", 100.0, 1.0)) == []
    assert e.apply_fill(fill(2, "buy", 110.0, 2.0)) == []
    assert e.apply_fill(fill(3, "buy", 120.0, 1.0)) == []
    assert e.position("s", "BTC") == pytest.approx(4.0)

    # close across the first two lots: all of f1, half of f2 (split)
    c = e.apply_fill(fill(4, "sell", 130.0, 2.0))
    assert [(t.entry_fill_id, t.size, t.entry_price, t.seq) for t in c] == [("f1", 1.0, 100.0, 0), ("f2", 1.0, 110.0, 1)]
    assert [t.side for t in c] == ["long", "long"]
    assert [t.pnl_usd for t in c] == [pytest.approx(30.0), pytest.approx(20.0)]
    assert [(lot.fill_id, lot.size) for lot in e.open_lots("s", "BTC")] == [("f2", 1.0), ("f3", 1.0)]

    # flip: closes the rest of f2 and f3, the remainder opens a short lot at 90
    c = e.apply_fill(fill(5, "sell", 90.0, 3.0))
    assert [(t.entry_fill_id, t.size, t.pnl_usd) for t in c] == [("f2", 1.0, pytest.approx(-20.0)),
                                                                 ("f3", 1.0, pytest.approx(-30.0))]
    lots = e.open_lots("s", "BTC")
    assert [(lot.fill_id, lot.direction, lot.size, lot.price) for lot in lots] == [("f5", -1, 1.0, 90.0)]
    assert e.position("s", "BTC") == pytest.approx(-1.0)

    c = e.apply_fill(fill(6, "buy", 80.0, 0.5))
    assert len(c) == 1 and c[0].side == "short" and c[0].pnl_usd == pytest.approx(5.0)
    assert c[0].entry_ts == T0 + 5_000_000_000 and c[0].exit_ts == T0 + 6_000_000_000
    assert c[0].exit_fill_id == "f6"
    assert e.position("s", "BTC") == pytest.approx(-0.5)


def test_shorts_close_fifo_not_lifo():
    e = LedgerEngine()
    e.apply_fill(fill(1, "sell", 100.0, 1.0))
    e.apply_fill(fill(2, "sell", 110.0, 1.0))
    c = e.apply_fill(fill(3, "buy", 105.0, 1.5))
    # the oldest short (f1 at 100) closes first; the seed's LIFO would have closed f2 first
    assert [(t.entry_fill_id, t.size) for t in c] == [("f1", 1.0), ("f2", 0.5)]
    assert [t.pnl_usd for t in c] == [pytest.approx(-5.0), pytest.approx(2.5)]
    assert all(t.side == "short" for t in c)
    assert [(lot.fill_id, lot.size) for lot in e.open_lots("s", "BTC")] == [("f2", 0.5)]


def test_fees_apportioned_by_size_and_pnl_pct():
    e = LedgerEngine()
    e.apply_fill(fill(1, "buy", 100.0, 2.0, fee=0.4))          # 0.2 USD per unit
    (a,) = e.apply_fill(fill(2, "sell", 110.0, 1.0, fee=0.11))
    assert a.gross_pnl_usd == pytest.approx(10.0)
    assert a.entry_fee_usd == pytest.approx(0.2) and a.exit_fee_usd == pytest.approx(0.11)
    assert a.pnl_usd == pytest.approx(9.69)
    assert a.pnl_pct == pytest.approx(9.69)                     # 9.69 / (100 * 1) * 100
    # flip: 1 unit closes the long, 2 units open a short carrying 2/3 of the exit fee
    (b,) = e.apply_fill(fill(3, "sell", 90.0, 3.0, fee=0.3))
    assert b.entry_fee_usd == pytest.approx(0.2) and b.exit_fee_usd == pytest.approx(0.1)
    assert b.pnl_usd == pytest.approx(-10.3) and b.pnl_pct == pytest.approx(-10.3)
    (c,) = e.apply_fill(fill(4, "buy", 85.0, 2.0, fee=0.0))
    assert c.side == "short" and c.entry_fee_usd == pytest.approx(0.2)
    assert c.pnl_usd == pytest.approx(9.8)
    assert c.pnl_pct == pytest.approx(9.8 / (90.0 * 2.0) * 100.0)
    assert e.positions() == {}


def test_internal_fills_count_and_keys_are_separate():
    e = LedgerEngine()
    e.apply_fill(fill(1, "buy", 100.0, 1.0, strategy="a", liquidity="internal"))
    e.apply_fill(fill(2, "sell", 100.0, 1.0, strategy="b", liquidity="internal"))
    e.apply_fill(fill(3, "buy", 50.0, 1.0, strategy="a", market="ETH"))
    assert e.positions() == {("a", "BTC"): 1.0, ("b", "BTC"): -1.0, ("a", "ETH"): 1.0}
    (t,) = e.apply_fill(fill(4, "sell", 101.0, 1.0, strategy="a", liquidity="internal"))
    assert t.pnl_usd == pytest.approx(1.0) and t.strategy == "a" and t.market == "BTC"


def test_float_residue_is_absorbed():
    e = LedgerEngine()
    e.apply_fill(fill(1, "buy", 100.0, 0.1))
    e.apply_fill(fill(2, "buy", 100.0, 0.2))
    c = e.apply_fill(fill(3, "sell", 100.0, 0.3))
    assert len(c) == 2 and e.positions() == {} and e.lot_count() == 0


def test_non_fill_events_are_ignored_and_invalid_fills_rejected():
    e = LedgerEngine()
    assert e.on_event(Bbo(id="b", ts_event=1, market="BTC", bid_px=1, bid_sz=1, ask_px=2, ask_sz=1)) == []
    e.on_event(fill(1, "buy", 100.0, 1.0))
    for bad in (fill(2, "sell", 100.0, 0.0), fill(3, "sell", -1.0, 1.0), fill(4, "sell", float("nan"), 1.0),
                fill(5, "sell", 100.0, 1.0, fee=float("inf"))):
        with pytest.raises(InvalidFill):
            e.apply_fill(bad)
    assert e.position("s", "BTC") == 1.0 and e.fills_applied == 1


def test_snapshot_restore_undoes_fills():
    e = LedgerEngine()
    e.apply_fill(fill(1, "buy", 100.0, 1.0))
    snap = e.snapshot({("s", "BTC"), ("s", "ETH")})
    e.apply_fill(fill(2, "sell", 100.0, 3.0))
    e.apply_fill(fill(3, "buy", 10.0, 1.0, market="ETH"))
    e.restore(snap)
    assert e.positions() == {("s", "BTC"): 1.0} and e.fills_applied == 1
    assert e.open_lots("s", "BTC")[0].fill_id == "f1"


def test_realized_pnl_equals_cash_flow_minus_fees_when_flat():
    """Property: once every key is flat, total realized PnL = sell proceeds - buy cost - fees."""
    rng = random.Random(7)
    e = LedgerEngine()
    fills, pos = [], {}
    for i in range(400):
        key = (rng.choice("ab"), rng.choice(["BTC", "ETH"]))
        side = rng.choice(["buy", "sell"])
        f = fill(i, side, round(rng.uniform(90, 110), 2), round(rng.uniform(0.1, 3), 3),
                 fee=round(rng.uniform(0, 0.05), 4), strategy=key[0], market=key[1])
        fills.append(f)
        pos[key] = pos.get(key, 0.0) + (f.size if side == "buy" else -f.size)
    for j, (key, p) in enumerate(sorted(pos.items())):
        if abs(p) > 1e-12:
            fills.append(fill(1000 + j, "sell" if p > 0 else "buy", 100.0, abs(p), 0.01, key[0], key[1]))
    pnl = sum(t.pnl_usd for f in fills for t in e.apply_fill(f))
    cash = sum((f.price * f.size) * (1 if f.side == "sell" else -1) - f.fee for f in fills)
    assert e.lot_count() == 0
    assert pnl == pytest.approx(cash, abs=1e-6)
