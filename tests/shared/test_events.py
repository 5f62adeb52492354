"""Event model: round trip of every type, validation errors, stable ids."""

import pytest

from shared import events as ev


def _samples():
    env = {"id": "a1", "ts_event": 1_757_973_376_839_832_000, "ts_recv": 5, "source": "t", "causation_id": "c0"}
    return [
        ev.BookSnapshot(**env, market="BTC", bids=[(1.0, 2.0)], asks=[(1.5, 3.0)], nonce=7),
        ev.BookDelta(**env, market="BTC", bids=[(1.0, 0.0)], asks=[], nonce=8, begin_nonce=7),
        ev.Bbo(**env, market="ETH", bid_px=4510.49, bid_sz=7.8173, ask_px=4510.51, ask_sz=0.1637),
        ev.Trade(**env, market="ETH", trade_id="123888277", price=4510.58, size=0.009, taker_side="buy"),
        ev.MarketStats(**env, market="ETH", mark_price=1.0, index_price=1.1, funding_rate=1e-5),
        ev.TargetPosition(**env, strategy="trend", market="BTC", target=-0.0002, reason="short"),
        ev.QuoteIntent(**env, strategy="maker", market="BTC", bid_px=1.0, bid_sz=0.1),
        ev.RestingOrders(**env, strategy="grid", market="ETH", orders=[("buy", 4500.0, 0.005), ("sell", 4510.0, 0.005)]),
        ev.CancelIntent(**env, strategy="maker"),
        ev.StopLossIntent(**env, strategy="copytrade", market="BTC", side="sell", trigger_price=113000.0, size=0.002),
        ev.OrderAccepted(**env, strategy="trend", market="BTC", client_order_index=3, side="buy", price=1.0, size=0.1),
        ev.OrderRejected(**env, strategy="trend", market="BTC", client_order_index=3, side="buy", price=1.0,
                         size=0.1, code=21706, reason="invalid order base or quote amount"),
        ev.OrderCanceled(**env, strategy="trend", market="BTC", client_order_index=3, remaining=0.1),
        ev.Fill(**env, fill_id="f1", strategy="trend", market="BTC", side="sell", price=1.0, size=0.1, fee=0.01),
        ev.PositionSnapshot(**env, strategy="trend", market="BTC", position=-0.1, avg_entry_price=1.0),
        ev.RiskState(**env, state="halted", reason="reconcile failed"),
        ev.GuardState(**env, guard="max_position", market="BTC", side="buy", engaged=True, position=0.01,
                      limit=0.01, reason="max_position 0.01 BTC"),
        ev.PositionMismatch(**env, market="BTC", account_position=0.0004, strategies_position=0.0002,
                            difference=0.0002, mismatch=True, positions={"A": 0.0002},
                            reason="account position 0.0004 BTC on the venue, strategies 0.0002 (A 0.0002)"),
        ev.ModelParams(**env, strategy="maker", market="BTC", sigma=2.5, A=0.8, k=0.05, gamma=0.01,
                       tick_size=0.1, mid=115000.0, interval_s=1.0, window_start=0, window_end=10**12,
                       sigma_garch=2.5, sigma_rolling=None, fit={"ak_r2": 0.97, "garch_loglik": None},
                       inputs={"returns": 3600.0}),
        ev.Control(**env, command="kill"),
    ]


def test_every_event_type_round_trips():
    samples = _samples()
    assert {type(s) for s in samples} == set(ev.EVENT_TYPES.values())
    for s in samples:
        data = ev.encode(s)
        back = ev.decode(data)
        assert back == s and type(back) is type(s)
        assert ev.encode(back) == data  # byte-identical re-encoding


@pytest.mark.parametrize("raw, needle", [
    (b"not json", "JSON"),
    (b'{"type":"nope","id":"x","ts_event":1}', "nope"),
    (b'{"type":"bbo","id":"x","ts_event":1,"market":"BTC","bid_px":"1","bid_sz":1,"ask_px":2,"ask_sz":1}', "bid_px"),
    (b'{"type":"fill","id":"x","ts_event":1}', "fill_id"),
    (b'{"type":"trade","id":"x","ts_event":1,"market":"B","trade_id":"1","price":1,"size":1,"taker_side":"up"}', "taker_side"),
])
def test_invalid_input_raises_decode_error_with_reason(raw, needle):
    with pytest.raises(ev.DecodeError) as exc:
        ev.decode(raw)
    assert needle.lower() in str(exc.value).lower()


def test_child_envelope_is_deterministic_and_distinct_per_index():
    cause = _samples()[2]
    a, b = ev.child(cause, "strategy-trend", 0), ev.child(cause, "strategy-trend", 1)
    assert a == ev.child(cause, "strategy-trend", 0)
    assert a["id"] != b["id"] and len(a["id"]) == 16
    assert a["ts_event"] == cause.ts_event and a["causation_id"] == cause.id
