"""The chaos suite's plan and invariant checks (``lighter_stack/chaos.py``): the plan is
deterministic and kills every service but venue-sim; each invariant counts what breaks it."""

from __future__ import annotations

import json

from lighter_stack.chaos import ChaosOptions, check_invariants, make_plan
from shared.bus import Bus
from shared.events import BookDelta, BookSnapshot, OrderAccepted, PositionSnapshot, RiskState, TargetPosition
from shared.markets import MarketInfo

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
ACCT = 1001


def test_plan_kills_each_service_n_times_in_shuffled_rounds_and_is_deterministic():
    services = ["ledger", "executor", "collector", "maker"]
    opts = ChaosOptions(seed=3, kills_per_service=3, redis_restarts=2, venue_faults={"ws_disconnect_rate": 0.1})
    plan = make_plan(opts, ["venue-sim", *services])
    assert plan == make_plan(opts, ["venue-sim", *services])
    kills = [a.target for a in plan if a.kind == "kill"]
    assert sorted(kills) == sorted(services * 3) and "venue-sim" not in kills
    for r in range(3):  # each round kills every service once
        assert sorted(kills[4 * r:4 * r + 4]) == sorted(services)
    kinds = [a.kind for a in plan]
    assert kinds.count("redis") == 2 and kinds.count("venue_faults") == 1 and kinds.count("venue_restart") == 1
    assert plan[0].kind == "kill" and plan[-1].kind == "kill"  # the other faults fall inside the run
    assert make_plan(ChaosOptions(seed=4, kills_per_service=3), services) != make_plan(
        ChaosOptions(seed=3, kills_per_service=3), services)


def _ev(cls, i, **kw):
    return cls(id=f"e{i}", ts_event=i, **kw)


async def test_invariants_count_each_breach(redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    s = bus.streams
    # books: snapshot n=1 ok, delta 1->2 ok, delta 3->4 does not chain (gap) and differs
    await bus.publish(s.book("BTC"), [
        _ev(BookSnapshot, 1, market="BTC", bids=[(100.0, 1.0)], asks=[(100.5, 1.0)], nonce=1),
        _ev(BookDelta, 2, market="BTC", bids=[(100.0, 0.0), (99.9, 2.0)], asks=[], nonce=2, begin_nonce=1),
        _ev(BookDelta, 3, market="BTC", bids=[(99.8, 1.0)], asks=[], nonce=4, begin_nonce=3),
    ])
    audit = tmp_path / "audit.jsonl"
    recs = [{"k": "book", "m": 1, "n": 1, "b": [[1000, 100000]], "a": [[1005, 100000]]},
            {"k": "book", "m": 1, "n": 2, "b": [[999, 200000]], "a": [[1005, 100000]]},
            {"k": "book", "m": 1, "n": 3, "b": [[999, 200000], [998, 100000]], "a": [[1005, 100000]]},
            {"k": "book", "m": 1, "n": 4, "b": [[999, 200000], [997, 100000]], "a": [[1005, 100000]]},
            {"k": "order", "acct": ACCT, "coi": 11, "m": 1}, {"k": "order", "acct": ACCT, "coi": 12, "m": 1},
            {"k": "order", "acct": ACCT, "coi": 11, "m": 1},  # sent twice
            {"k": "order", "acct": 2002, "coi": 11, "m": 1},  # another account's index: not ours
            {"k": "order", "acct": ACCT, "coi": 0, "m": 1}, {"k": "order", "acct": ACCT, "coi": 0, "m": 1}]
    audit.write_text("".join(json.dumps(r) + "\n" for r in recs))
    # exec: a non-reduce-only order accepted while halted; positions sum to 0.3 vs the venue's 0.2
    order = dict(strategy="trend", market="BTC", client_order_index=5, side="buy", price=100.0, size=0.1)
    await bus.publish(s.exec(ACCT), [
        _ev(RiskState, 10, state="halted", reason="test"),
        _ev(OrderAccepted, 11, **order),
        _ev(OrderAccepted, 12, **{**order, "reduce_only": True}),
        _ev(RiskState, 13, state="running"),
        _ev(OrderAccepted, 14, **order),
        _ev(PositionSnapshot, 15, strategy="trend", market="BTC", position=0.1),
        _ev(PositionSnapshot, 16, strategy="maker", market="BTC", position=0.5),
        _ev(PositionSnapshot, 17, strategy="maker", market="BTC", position=0.2),
    ])
    # intents: the executor group acknowledged one of three (one pending, one never delivered)
    intent = s.intent(ACCT)
    await bus.publish(intent, [_ev(TargetPosition, 20 + i, strategy="trend", market="BTC", target=0.1)
                               for i in range(3)])
    await redis_client.xgroup_create(intent, "executor", id="0")
    got = await redis_client.xreadgroup("executor", "x", {intent: ">"}, count=2)
    await redis_client.xack(intent, "executor", got[0][1][0][0])
    out = await check_invariants(redis_client, namespace, ACCT, [BTC], audit, {1: 0.2})
    assert out["book_mismatches"] == 2  # the unchained delta; the book after it (venue's n=4 has 99.7, not 99.8)
    assert out["duplicate_orders"] == 1
    assert out["signed_while_halted"] == 1
    assert out["position_mismatches"] == 1
    assert out["intents_lost"] == 2
    clean = await check_invariants(redis_client, namespace, ACCT, [BTC], audit, {1: 0.3})
    assert clean["position_mismatches"] == 0
