"""The backtest's speed shortcuts change nothing: each is compared with the path it replaces."""

from __future__ import annotations

import random

import msgspec
import pytest

from shared.events import Bbo, Trade
from shared.markets import MarketInfo
from shared.venue.errors import VenueError
from shared.venue.matching import (
    BookChanged,
    CancelAll,
    CancelOrder,
    CreateOrder,
    MatchingEngine,
    PublicTrade,
    StatsChanged,
)

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000


def _scenario(seed: int, n: int = 3000) -> list[tuple[str, object]]:
    """A random walk of the touch with trades, and orders/cancels of two accounts."""
    rng = random.Random(seed)
    out: list[tuple[str, object]] = []
    bid = 1_000_000  # ticks (100,000.0 USD)
    ts = T0
    coi = {7: 0, 8: 0}
    for i in range(n):
        ts += rng.randint(1, 150) * MS
        r = rng.random()
        if r < 0.45:
            bid += rng.choice([-2, -1, 0, 0, 1, 2])
            spread = rng.choice([1, 1, 2, 3])
            out.append(("md", Bbo(id=f"b{i}", ts_event=ts, market="BTC", bid_px=bid / 10, bid_sz=rng.choice([0.1, 0.3, 0.5]),
                                  ask_px=(bid + spread) / 10, ask_sz=rng.choice([0.05, 0.2, 0.6]))))
        elif r < 0.8:
            side = rng.choice(["buy", "sell"])
            px = bid + (rng.randint(1, 3) if side == "buy" else -rng.randint(0, 2))
            out.append(("md", Trade(id=f"t{i}", ts_event=ts, market="BTC", trade_id=str(10_000 + i), price=px / 10,
                                    size=rng.choice([0.01, 0.05, 0.2, 0.7]), taker_side=side)))
        elif r < 0.95:
            acct = rng.choice([7, 8])
            coi[acct] += 1
            is_ask = rng.random() < 0.5
            px = bid + rng.randint(-3, 4)
            tif = rng.choice(["gtt", "post_only", "ioc"])
            out.append(("tx", (CreateOrder(account=acct, market_id=1, client_order_index=coi[acct],
                                           base_amount=rng.choice([100, 1000, 5000]), price=px, is_ask=is_ask,
                                           order_type="limit", time_in_force=tif, reduce_only=False,
                                           order_expiry_ms=0, nonce=i, tx_hash=f"h{i}"), ts)))
        elif r < 0.99:
            acct = rng.choice([7, 8])
            out.append(("tx", (CancelOrder(account=acct, market_id=1, index=max(1, coi[acct] - rng.randint(0, 3)),
                                           tx_hash=f"c{i}"), ts)))
        else:
            out.append(("tx", (CancelAll(account=rng.choice([7, 8]), market_id=None, tx_hash=f"a{i}"), ts)))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_matching_engine_without_public_updates_differs_only_by_them(seed):
    """``public_updates=False`` (backtests) drops PublicTrade/BookChanged/StatsChanged of market
    data and nothing else: the other updates, fills, positions and book state are identical."""
    public = (PublicTrade, BookChanged, StatsChanged)
    full, lean = MatchingEngine([BTC]), MatchingEngine([BTC], public_updates=False)
    saw_public = 0
    for kind, item in _scenario(seed):
        if kind == "md":
            a, b = full.on_market_data(item), lean.on_market_data(item)  # type: ignore[arg-type]
        else:
            tx, ts = item  # type: ignore[misc]
            res = []
            for eng in (full, lean):
                try:
                    res.append(msgspec.json.encode(eng.submit(tx, ts)))
                except VenueError as exc:
                    res.append(exc.code)
            assert res[0] == res[1]
            continue
        saw_public += sum(isinstance(u, PublicTrade) for u in a)
        market_data_book_changes = [u for u in a if not isinstance(u, public)]
        assert msgspec.json.encode(market_data_book_changes) == msgspec.json.encode(
            [u for u in b if not isinstance(u, public)])
        assert not any(isinstance(u, PublicTrade | StatsChanged) for u in b)
    enc = msgspec.json.encode
    assert saw_public > 500 and len(full.fills) > 50
    assert enc(full.fills) == enc(lean.fills)
    assert enc(full.state) == enc(lean.state) and enc(full.accounts) == enc(lean.accounts)
    assert enc(full.resting) == enc(lean.resting) and enc(full._pending) == enc(lean._pending)


def test_recorder_exposure_and_equity_match_a_brute_force_count():
    """Exposure is accounted when a fill changes what is open (not on every event), and the
    backtest loop sets ``last_ts`` itself between equity samples: the metrics must equal those
    of calling ``on_time`` on every event, and exposure the time-weighted count of open state."""
    from lighter_stack.backtest.metrics import Recorder
    from shared.events import Fill

    eth = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                     min_quote_amount=10)
    rng = random.Random(3)
    every, shortcut = Recorder([BTC, eth], sample_s=1.0), Recorder([BTC, eth], sample_s=1.0)
    pos = {("a", "BTC"): 0, ("a", "ETH"): 0, ("b", "BTC"): 0}
    expected = {"a": 0, "b": 0, "total": 0}
    ts, last = T0, None
    for i in range(4000):
        ts += rng.choice([0, 1, 7, 50, 300, 2500]) * MS
        if last is not None:  # brute force: what was open during (last, ts]
            dt = ts - last
            for s in ("a", "b"):
                if any(v for (k, _), v in pos.items() if k == s):
                    expected[s] += dt
            net = {m: sum(v for (_, mk), v in pos.items() if mk == m) for m in ("BTC", "ETH")}
            if any(net.values()):
                expected["total"] += dt
        last = ts
        every.on_time(ts)
        if shortcut.last_ts < ts < shortcut.next_sample_ns:
            shortcut.last_ts = ts
        else:
            shortcut.on_time(ts)
        for r in (every, shortcut):
            r.on_market_data(Bbo(id=f"q{i}", ts_event=ts, market="BTC", bid_px=100000.0 + i % 7, bid_sz=1.0,
                                 ask_px=100001.0 + i % 7, ask_sz=1.0))
        if rng.random() < 0.05:
            key = rng.choice(list(pos))
            side = rng.choice(["buy", "sell"])
            pos[key] += 1 if side == "buy" else -1
            f = Fill(id=f"f{i}", ts_event=ts, fill_id=f"f{i}", strategy=key[0], market=key[1], side=side,
                     price=100000.0, size=1.0)
            every.on_fill(f)
            shortcut.on_fill(f)
    every.finish(ts)
    shortcut.finish(ts)
    for name in ("a", "b", "total"):
        assert every.stats(name) == shortcut.stats(name), name
        span = every.last_ts - every.first_ts
        assert every.stats(name)["exposure_time_pct"] == round(expected[name] / span * 100.0, 6), name
    assert every.equity == shortcut.equity and every.sample_t == shortcut.sample_t
    assert 0 < expected["a"] < span and 0 < expected["total"]
