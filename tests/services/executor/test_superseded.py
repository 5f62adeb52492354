"""Executor engine: quote/resting intents superseded within one consumer batch are skipped.

A batch of several ``QuoteIntent``s of one strategy and market must end with the live orders of
the last one, exactly as if each had been processed in turn, but without placing the orders the
earlier ones asked for (each would cost signatures and a request, and be canceled at once)."""

from __future__ import annotations

from executor_kit import T0, make_engine

from services.executor.engine import Engine
from shared.events import Bbo, Control, QuoteIntent, RestingOrders


def bbo(i: int = 0) -> Bbo:
    return Bbo(id=f"bbo{i}", ts_event=T0 + i, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def quote(i: int, bid: float, strategy: str = "mm", market: str = "BTC", ts: int | None = None) -> QuoteIntent:
    return QuoteIntent(id=f"q-{strategy}-{i}", ts_event=T0 + i if ts is None else ts, source=strategy,
                       strategy=strategy, market=market, bid_px=bid, bid_sz=0.001, ask_px=115010.0, ask_sz=0.001)


def creates(e: Engine) -> list[tuple[str, str, int]]:
    return [(c.kind, c.side, c.price) for c in e.take_commands()]


def test_a_batch_of_quotes_places_only_the_last_one():
    e = make_engine()
    e.on_event(bbo())
    e.on_events([quote(1, 114990.0), quote(2, 114991.0), quote(3, 114992.0)])
    assert creates(e) == [("create", "buy", 1149920), ("create", "sell", 1150100)]
    assert e.superseded_intents == 2
    assert sorted(e.resting_orders("mm", "BTC")) == [("buy", 114992.0, 0.001), ("sell", 115010.0, 0.001)]


def test_the_end_state_equals_processing_one_by_one():
    batch = [quote(1, 114990.0), quote(2, 114980.0, strategy="grid"), quote(3, 114991.0),
             quote(4, 114981.0, strategy="grid"), quote(5, 114992.0, market="ETH")]
    one, many = make_engine(), make_engine()
    for e in (one, many):
        e.on_event(bbo())
    for ev in batch:
        one.on_event(ev)
    many.on_events(batch)
    for strategy, market in (("mm", "BTC"), ("grid", "BTC"), ("mm", "ETH")):
        assert sorted(many.resting_orders(strategy, market)) == sorted(one.resting_orders(strategy, market))
    assert many.superseded_intents == 2  # mm's and grid's first BTC quotes
    assert len(many.take_commands()) < len(one.take_commands())


def test_other_strategies_and_markets_are_not_superseded():
    e = make_engine()
    e.on_event(bbo())
    e.on_events([quote(1, 114990.0), quote(2, 114980.0, strategy="grid"), quote(3, 114970.0, market="ETH")])
    assert e.superseded_intents == 0


def test_a_resting_orders_set_supersedes_a_quote_of_the_same_strategy_and_market():
    e = make_engine()
    e.on_event(bbo())
    ro = RestingOrders(id="ro", ts_event=T0 + 2, source="mm", strategy="mm", market="BTC",
                       orders=[("buy", 114900.0, 0.001)], post_only=True)
    e.on_events([quote(1, 114990.0), ro])
    assert creates(e) == [("create", "buy", 1149000)]
    assert e.superseded_intents == 1


def test_a_control_between_two_quotes_keeps_both():
    """A pause between them: the first is acted on before the pause (and its orders canceled by
    it), the second is ignored while paused; nothing is skipped across a Control."""
    e = make_engine()
    e.on_event(bbo())
    pause = Control(id="c", ts_event=T0 + 2, source="operator", command="pause", target="mm")
    e.on_events([quote(1, 114990.0), pause, quote(3, 114991.0)])
    assert e.superseded_intents == 0
    assert ("create", "buy", 1149900) in creates(e)


def test_an_older_later_quote_does_not_supersede():
    """Delivery order is not event order: a later entry with an older ts_event replaces nothing
    (both are processed, the last one processed wins, as before)."""
    e = make_engine()
    e.on_event(bbo())
    e.on_events([quote(5, 114990.0), quote(3, 114991.0, ts=T0 + 3)])
    assert e.superseded_intents == 0
    assert sorted(e.resting_orders("mm", "BTC"))[0] == ("buy", 114991.0, 0.001)


def test_a_stale_later_quote_supersedes_nothing():
    """With max_intent_age_ms 1 ms, the second quote is stale by the time it is processed (a
    market data event 2 ms newer came before it): the first one is acted on, as before."""
    e = make_engine(max_intent_age_ms=1)
    e.on_event(bbo())
    late_bbo = bbo(6_000_000)
    e.on_events([quote(4_000_000, 114990.0), late_bbo, quote(2_000_000, 114991.0, ts=T0 + 4_000_001)])
    assert e.superseded_intents == 0
    assert ("create", "buy", 1149900) in creates(e)
