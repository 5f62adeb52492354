"""venue-sim refuses the order txs Lighter refuses, with Lighter's codes (reference notes 2, 6.3,
6.5, 6.7; lighter-go's tx Validate rules), and takes what Lighter takes: client order index 0,
the expiry window's edges, scheduled and aborted cancel-alls, modify. Each refusal leaves the
nonce unused."""

from __future__ import annotations

import json

import pytest

from services.venue_sim.server import VenueServer
from shared.markets import MarketInfo
from shared.venue.errors import VenueError
from shared.venue.matching import MatchingEngine, OrderUpdate

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
NOW_MS = T0 // 1_000_000
MS, MIN_MS, DAY_MS = 1_000_000, 60_000, 86_400_000
ACCT, KEY = 1001, 4


def make_server(expire_orders: bool = False) -> tuple[VenueServer, list[int]]:
    now = [T0]
    return VenueServer(MatchingEngine([BTC], expire_orders=expire_orders), [BTC], lambda: now[0]), now


def create(**kw) -> dict:
    """A valid GTT limit bid below the market, 28 days of expiry; ``kw`` overrides fields
    (a value ``...`` drops the field)."""
    d = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "MarketIndex": 1, "ClientOrderIndex": 1, "BaseAmount": 100,
         "Price": 1_140_000, "IsAsk": 0, "Type": 0, "TimeInForce": 1, "ReduceOnly": 0, "TriggerPrice": 0,
         "OrderExpiry": NOW_MS + 28 * DAY_MS, "ExpiredAt": 0, "Sig": "", "L2TxAttributes": None}
    d.update(kw)
    return {k: v for k, v in d.items() if v is not ...}


def send(srv: VenueServer, tx_type: int, info: dict) -> dict:
    info = {**info, "Nonce": info.get("Nonce", srv.nonces.get((ACCT, KEY), 0))}
    return srv.send_tx(tx_type, json.dumps(info))


def refused(srv: VenueServer, tx_type: int, info: dict) -> int:
    before = srv.nonces.get((ACCT, KEY), 0)
    with pytest.raises(VenueError) as exc:
        send(srv, tx_type, info)
    assert srv.nonces.get((ACCT, KEY), 0) == before  # a refused tx uses no nonce
    return exc.value.code


TRIG = {"TriggerPrice": 1_130_000}
SL = {"Type": 2, "TimeInForce": 0, **TRIG}

CREATE_REFUSALS = [
    # integer fields must be JSON integers (Lighter decodes into Go integers)
    ("float amount", {"BaseAmount": 100.0}, 21501),
    ("string price", {"Price": "1140000"}, 21501),
    ("bool is_ask", {"IsAsk": True}, 21501),
    ("null expiry", {"OrderExpiry": None}, 21501),
    ("float nonce", {"Nonce": 0.0}, 21501),
    ("missing trigger price", {"TriggerPrice": ...}, 21501),
    ("missing type", {"Type": ...}, 21501),
    # ranges
    ("unknown market", {"MarketIndex": 7}, 21602),
    ("nil market", {"MarketIndex": 255}, 21602),
    ("negative coi", {"ClientOrderIndex": -1}, 21727),
    ("coi 2^48", {"ClientOrderIndex": 2**48}, 21727),
    ("amount 0", {"BaseAmount": 0}, 21701),
    ("amount 0 reduce-only (grouped children only)", {"BaseAmount": 0, "ReduceOnly": 1}, 21701),
    ("amount 2^48", {"BaseAmount": 2**48}, 21701),
    ("negative amount", {"BaseAmount": -5}, 21701),
    ("price 0", {"Price": 0}, 21702),
    ("price 2^32", {"Price": 2**32}, 21702),
    ("is_ask 2", {"IsAsk": 2}, 21703),
    ("reduce_only 2", {"ReduceOnly": 2}, 21740),
    ("twap", {"Type": 6}, 21710),
    ("twap-sub (venue only)", {"Type": 7}, 21704),
    ("liquidation (venue only)", {"Type": 8}, 21704),
    ("type 9", {"Type": 9}, 21704),
    ("type -1", {"Type": -1}, 21704),
    ("tif 3", {"TimeInForce": 3}, 21705),
    # type / time-in-force combinations
    ("market gtt", {"Type": 1, "TimeInForce": 1, "OrderExpiry": 0}, 21705),
    ("stop-loss gtt", {**SL, "TimeInForce": 1}, 21705),
    ("take-profit post-only", {**SL, "Type": 4, "TimeInForce": 2}, 21705),
    # trigger prices
    ("stop-loss without trigger", {**SL, "TriggerPrice": 0}, 21729),
    ("stop-loss-limit without trigger", {"Type": 3}, 21729),
    ("take-profit-limit trigger 2^32", {"Type": 5, "TriggerPrice": 2**32}, 21729),
    ("limit with trigger", {"TriggerPrice": 5}, 21729),
    ("market with trigger", {"Type": 1, "TimeInForce": 0, "OrderExpiry": 0, "TriggerPrice": 5}, 21729),
    # order expiry
    ("ioc limit with expiry", {"TimeInForce": 0}, 21711),
    ("market with expiry", {"Type": 1, "TimeInForce": 0}, 21711),
    ("gtt without expiry", {"OrderExpiry": 0}, 21711),
    ("post-only without expiry", {"TimeInForce": 2, "OrderExpiry": 0}, 21711),
    ("stop-loss without expiry", {**SL, "OrderExpiry": 0}, 21711),
    ("take-profit-limit without expiry", {"Type": 5, **TRIG, "OrderExpiry": 0}, 21711),
    ("expiry -1 (signer placeholder)", {"OrderExpiry": -1}, 21711),
    ("expiry under 5 min", {"OrderExpiry": NOW_MS + 5 * MIN_MS - 1}, 21711),
    ("expiry over 30 days", {"OrderExpiry": NOW_MS + 30 * DAY_MS + 1}, 21711),
    # market rules
    ("below min amount", {"BaseAmount": 1}, 21706),
]


@pytest.mark.parametrize(("what", "fields", "code"), CREATE_REFUSALS, ids=[c[0] for c in CREATE_REFUSALS])
def test_create_refusals_carry_lighters_code(what, fields, code):
    srv, _ = make_server()
    assert refused(srv, 14, create(**fields)) == code, what
    assert srv.engine.pending_count() == 0


@pytest.mark.parametrize("fields", [
    {"OrderExpiry": NOW_MS + 5 * MIN_MS},  # the window's edges
    {"OrderExpiry": NOW_MS + 30 * DAY_MS},
    {"ClientOrderIndex": 2**48 - 1},
    {"ClientOrderIndex": 0},
    {"TimeInForce": 0, "OrderExpiry": 0},  # IOC limit
    {"Type": 1, "TimeInForce": 0, "OrderExpiry": 0},  # market
    SL,  # stop-loss (IOC, trigger, expiry), as Lighter's signed sample
    {**SL, "Type": 4},  # take-profit
    {"Type": 3, **TRIG},  # stop-loss-limit GTT
    {"Type": 5, "TimeInForce": 2, **TRIG},  # take-profit-limit post-only
])
def test_what_lighter_takes_is_accepted(fields):
    srv, _ = make_server()
    assert send(srv, 14, create(**fields))["code"] == 200
    assert srv.nonces[(ACCT, KEY)] == 1


def test_expiry_window_is_the_venue_clock():
    srv, now = make_server()
    now[0] = T0 + 3600 * 1_000_000_000  # an hour later, the old expiry edge is too close
    assert refused(srv, 14, create(OrderExpiry=NOW_MS + 5 * MIN_MS)) == 21711
    assert send(srv, 14, create(OrderExpiry=NOW_MS + 65 * MIN_MS))["code"] == 200


def test_client_order_index_zero_is_none_cancel_by_order_index_only():
    srv, _ = make_server()
    send(srv, 14, create(ClientOrderIndex=0))
    send(srv, 14, create(ClientOrderIndex=0, Price=1_139_000))  # no duplicate check for 0
    send(srv, 14, create(ClientOrderIndex=7))
    assert refused(srv, 14, create(ClientOrderIndex=7)) == 21728  # non-zero: checked, pending included
    srv.engine.advance(T0 + 300 * MS)
    zero = [o for o in srv.engine.active_orders(ACCT) if o.client_order_index == 0]
    assert len(zero) == 2
    cancel = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "MarketIndex": 1, "ExpiredAt": 0}
    assert refused(srv, 15, {**cancel, "Index": 0}) == 21700
    send(srv, 15, {**cancel, "Index": zero[1].order_index})
    up = srv.engine.advance(T0 + 600 * MS)
    assert [u.order.order_index for u in up if isinstance(u, OrderUpdate)] == [zero[1].order_index]
    assert sorted(o.client_order_index for o in srv.engine.active_orders(ACCT)) == [0, 7]


CANCEL = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "MarketIndex": 1, "Index": 5, "ExpiredAt": 0}
CANCEL_ALL = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "TimeInForce": 0, "Time": 0, "ExpiredAt": 0}
OTHER_REFUSALS = [
    ("cancel index 0", 15, {**CANCEL, "Index": 0}, 21700),
    ("cancel index 2^60", 15, {**CANCEL, "Index": 2**60}, 21700),
    ("cancel unknown market", 15, {**CANCEL, "MarketIndex": 9}, 21602),
    ("cancel string index", 15, {**CANCEL, "Index": "5"}, 21501),
    ("cancel-all tif 3", 16, {**CANCEL_ALL, "TimeInForce": 3}, 21713),
    ("immediate with time", 16, {**CANCEL_ALL, "Time": NOW_MS + 10 * MIN_MS}, 21714),
    ("abort with time", 16, {**CANCEL_ALL, "TimeInForce": 2, "Time": 5}, 21714),
    ("scheduled time 0", 16, {**CANCEL_ALL, "TimeInForce": 1}, 21714),
    ("scheduled under 5 min", 16, {**CANCEL_ALL, "TimeInForce": 1, "Time": NOW_MS + 5 * MIN_MS - 1}, 21714),
    ("scheduled over 15 days", 16, {**CANCEL_ALL, "TimeInForce": 1, "Time": NOW_MS + 15 * DAY_MS + 1}, 21714),
    ("cancel-all float time", 16, {**CANCEL_ALL, "Time": 0.0}, 21501),
    ("cancel-all missing tif", 16, {k: v for k, v in CANCEL_ALL.items() if k != "TimeInForce"}, 21501),
    ("cancel-all unknown market attribute", 16, {**CANCEL_ALL, "L2TxAttributes": {"5": 9}}, 21602),
]


@pytest.mark.parametrize(("what", "tx_type", "info", "code"), OTHER_REFUSALS, ids=[c[0] for c in OTHER_REFUSALS])
def test_cancel_and_cancel_all_refusals(what, tx_type, info, code):
    srv, _ = make_server()
    assert refused(srv, tx_type, info) == code, what


def _resting(srv: VenueServer, **kw) -> int:
    send(srv, 14, create(**kw))
    srv.engine.advance(srv.clock() + 300 * MS)
    return srv.engine.active_orders(ACCT)[-1].order_index


def test_scheduled_cancel_all_fires_at_its_time_and_shows_in_the_account():
    srv, now = make_server()
    oid = _resting(srv)
    at = NOW_MS + 10 * MIN_MS
    send(srv, 16, {**CANCEL_ALL, "TimeInForce": 1, "Time": at})
    assert srv.engine.advance(T0 + 500 * MS) == []  # armed, nothing canceled
    assert srv._account_json(ACCT)["cancel_all_time"] == at
    assert srv.engine.advance(at * MS - 1) == [] and len(srv.engine.active_orders(ACCT)) == 1
    up = srv.engine.advance(at * MS)
    (o,) = [u.order for u in up if isinstance(u, OrderUpdate)]
    assert (o.order_index, o.status, o.updated_ns) == (oid, "canceled", at * MS)
    assert srv.engine.active_orders(ACCT) == [] and srv._account_json(ACCT)["cancel_all_time"] == 0


def test_abort_disarms_and_a_newer_schedule_replaces_the_older():
    srv, now = make_server()
    _resting(srv)
    send(srv, 16, {**CANCEL_ALL, "TimeInForce": 1, "Time": NOW_MS + 10 * MIN_MS})
    send(srv, 16, {**CANCEL_ALL, "TimeInForce": 1, "Time": NOW_MS + 20 * MIN_MS})  # a dead-man refresh
    srv.engine.advance(T0 + 11 * 60_000 * MS)
    assert len(srv.engine.active_orders(ACCT)) == 1
    assert srv._account_json(ACCT)["cancel_all_time"] == NOW_MS + 20 * MIN_MS
    now[0] = T0 + 11 * 60_000 * MS
    send(srv, 16, {**CANCEL_ALL, "TimeInForce": 2})
    srv.engine.advance(T0 + 30 * 60_000 * MS)
    assert len(srv.engine.active_orders(ACCT)) == 1 and srv._account_json(ACCT)["cancel_all_time"] == 0


def test_gtt_order_expires_at_its_order_expiry_when_the_venue_enforces_it():
    srv, _ = make_server(expire_orders=True)
    at = NOW_MS + 5 * MIN_MS
    oid = _resting(srv, OrderExpiry=at)
    assert srv.engine.next_timer_ns() == at * MS
    assert srv.engine.advance(at * MS - 1) == []
    up = srv.engine.advance(at * MS)
    (o,) = [u.order for u in up if isinstance(u, OrderUpdate)]
    assert (o.order_index, o.status, o.updated_ns) == (oid, "canceled-expired", at * MS)
    assert srv.engine.active_orders(ACCT) == []
    assert srv.engine.inactive_orders(ACCT)[0].status == "canceled-expired"


def test_order_expiry_is_not_enforced_by_default():
    srv, _ = make_server()
    _resting(srv, OrderExpiry=NOW_MS + 5 * MIN_MS)
    srv.engine.advance(T0 + 3600 * 1_000_000_000)
    assert len(srv.engine.active_orders(ACCT)) == 1  # backtests and lockstep keep their outputs


MODIFY = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "MarketIndex": 1, "Index": 1, "BaseAmount": 200,
          "Price": 1_139_000, "TriggerPrice": 0, "ExpiredAt": 0}


@pytest.mark.parametrize(("what", "fields", "code"), [
    ("no such order", {"Index": 99}, 21715),
    ("index 0", {"Index": 0}, 21700),
    ("amount 0", {"BaseAmount": 0}, 21701),
    ("price 0", {"Price": 0}, 21702),
    ("trigger on a limit", {"TriggerPrice": 1_130_000}, 21729),
    ("below min amount", {"BaseAmount": 1}, 21706),
    ("unknown market", {"MarketIndex": 9}, 21602),
    ("float price", {"Price": 1_139_000.0}, 21501),
])
def test_modify_refusals(what, fields, code):
    srv, _ = make_server()
    _resting(srv)
    assert refused(srv, 17, {**MODIFY, **fields}) == code, what


def test_modify_changes_price_and_size_by_client_or_order_index():
    srv, _ = make_server()
    oid = _resting(srv)
    send(srv, 17, MODIFY)  # by client order index 1
    srv.engine.advance(srv.clock() + 300 * MS)
    (o,) = srv.engine.active_orders(ACCT)
    assert (o.order_index, o.price, o.remaining, o.status) == (oid, 1_139_000, 200, "open")
    send(srv, 17, {**MODIFY, "Index": oid, "BaseAmount": 50, "Price": 1_139_000})  # shrink only
    srv.engine.advance(srv.clock() + 300 * MS)
    (o,) = srv.engine.active_orders(ACCT)
    assert (o.remaining, o.initial_amount) == (50, 50)
    assert srv.engine.public_book(1)[0] == {1_139_000: 50}


def test_a_refused_tx_stops_a_batch_earlier_ones_stay():
    srv, _ = make_server()
    infos = [create(Nonce=0, ClientOrderIndex=1), create(Nonce=1, ClientOrderIndex=2, Price=0),
             create(Nonce=2, ClientOrderIndex=3)]
    with pytest.raises(VenueError) as exc:
        srv.send_tx_batch(json.dumps([14, 14, 14]), json.dumps([json.dumps(i) for i in infos]))
    assert exc.value.code == 21702
    assert srv.nonces[(ACCT, KEY)] == 1 and srv.engine.pending_count() == 1  # the first one only
