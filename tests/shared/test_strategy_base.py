"""shared.strategy_base.Pending: the no-spam/retry rule of target-position strategies."""

import pytest

from shared.strategy_base import Pending

S = 1_000_000_000


def sent(target: float = 1.0) -> Pending:
    p = Pending()
    assert p.check(target, ts=0, bucket=0, retry_after_s=30) == ""
    return p


def test_same_target_is_suppressed_while_pending():
    p = sent()
    assert p.check(1.0, ts=15 * S, bucket=1, retry_after_s=30) is None
    assert p.check(1.0, ts=30 * S, bucket=2, retry_after_s=30) == " retry"  # timer


def test_venue_reject_or_cancel_allows_a_retry_in_the_next_bucket():
    p = sent()
    p.order_died()
    assert p.check(1.0, ts=1 * S, bucket=0, retry_after_s=30) is None  # same bucket
    assert p.check(1.0, ts=15 * S, bucket=1, retry_after_s=30) == " retry"


def test_local_refusal_waits_for_retry_after_s():
    p = sent()
    p.order_died(local=True)
    assert p.check(1.0, ts=15 * S, bucket=1, retry_after_s=30) is None
    p.order_died()  # a late cancel of an older order does not hasten it
    assert p.check(1.0, ts=29 * S, bucket=1, retry_after_s=30) is None
    assert p.check(1.0, ts=30 * S, bucket=2, retry_after_s=30) == " retry"
    p.order_died()  # after the re-send a venue death counts again
    assert p.check(1.0, ts=45 * S, bucket=3, retry_after_s=30) == " retry"


def test_a_different_target_goes_out_at_once_and_reaching_clears():
    p = sent()
    p.order_died(local=True)
    assert p.check(0.0, ts=1 * S, bucket=0, retry_after_s=30) == ""
    p.reached(0.0)
    assert p.target is None and p.may_enter(2 * S, 0, 30)


def test_order_events_of_a_shared_order_reach_every_named_strategy():
    from shared.events import Fill, OrderCanceled
    from shared.strategy_base import addressed_to

    env = {"id": "x", "ts_event": 1}
    shared_cancel = OrderCanceled(**env, strategy="trend,renko", market="BTC", client_order_index=7, remaining=0.1)
    assert addressed_to(shared_cancel, "trend") and addressed_to(shared_cancel, "renko")
    assert not addressed_to(shared_cancel, "tren") and not addressed_to(shared_cancel, "grid")
    fill = Fill(**env, fill_id="f", strategy="trend", market="BTC", side="buy", price=1.0, size=0.1)
    assert addressed_to(fill, "trend") and not addressed_to(fill, "renko")


def test_a_strategy_retries_after_the_cancel_of_an_order_it_shared():
    from services.strategy_trend.config import TrendConfig
    from services.strategy_trend.engine import TrendEngine
    from shared.events import OrderCanceled

    eng = TrendEngine(TrendConfig(), ["BTC"])
    st = eng._m["BTC"]
    assert st.pending.check(0.0002, ts=0, bucket=0, retry_after_s=30) == ""
    eng.on_event(OrderCanceled(id="c", ts_event=1, strategy="renko,trend", market="BTC", client_order_index=7,
                               remaining=0.0002))
    assert st.pending.check(0.0002, ts=15 * S, bucket=1, retry_after_s=30) == " retry"


def test_unreachable_refusal_stops_retries_until_the_target_changes():
    p = sent()
    p.order_died(unreachable=True)
    assert p.check(1.0, ts=15 * S, bucket=1, retry_after_s=30) is None
    assert p.check(1.0, ts=300 * S, bucket=20, retry_after_s=30) is None  # no timer
    p.order_died()  # a late death of an older order does not revive it
    assert p.check(1.0, ts=400 * S, bucket=30, retry_after_s=30) is None
    assert p.may_enter(400 * S, 30, 30)  # given up: an entry may compute a (different) target
    assert p.check(1.5, ts=401 * S, bucket=30, retry_after_s=30) == ""  # a changed target goes out
    assert not p.unreachable
    assert p.check(1.5, ts=431 * S, bucket=31, retry_after_s=30) == " retry"  # and is retried as usual


def test_reaching_an_unreachable_target_clears_it():
    p = sent()
    p.order_died(unreachable=True)
    p.reached(1.0)  # e.g. filled by netting against another strategy
    assert p.target is None and not p.unreachable
    assert p.check(1.0, ts=1 * S, bucket=1, retry_after_s=30) == ""


def _trend_engine_with_pending(target: float):
    from services.strategy_trend.config import TrendConfig
    from services.strategy_trend.engine import TrendEngine

    eng = TrendEngine(TrendConfig(), ["BTC"])
    st = eng._m["BTC"]
    assert st.pending.check(target, ts=0, bucket=0, retry_after_s=30) == ""
    return eng, st


def _local_reject(code: int):
    from shared.events import OrderRejected

    return OrderRejected(id=f"r{code}", ts_event=1, strategy="trend", market="BTC", client_order_index=0,
                         side="buy", price=115000.0, size=0.00005, code=code,
                         reason="refused locally (unreachable: below the market minimum): size 5e-05 below "
                                "min_base_amount 0.0002 BTC" if code == 1 else "refused locally: halted")


def test_target_engine_does_not_retry_after_code_1_until_the_target_changes():
    eng, st = _trend_engine_with_pending(0.0002)
    eng.on_event(_local_reject(1))
    assert st.pending.check(0.0002, ts=60 * S, bucket=2, retry_after_s=30) is None
    assert st.pending.check(0.0002, ts=3600 * S, bucket=120, retry_after_s=30) is None
    assert st.pending.check(0.0, ts=3601 * S, bucket=120, retry_after_s=30) == ""  # e.g. an exit


def test_target_engine_still_retries_after_code_0():
    eng, st = _trend_engine_with_pending(0.0002)
    eng.on_event(_local_reject(0))
    assert st.pending.check(0.0002, ts=15 * S, bucket=1, retry_after_s=30) is None  # waits for the timer
    assert st.pending.check(0.0002, ts=30 * S, bucket=2, retry_after_s=30) == " retry"


def test_notional_sizing_of_an_unlisted_market():
    from shared.markets import KNOWN_MARKETS, MarketInfo
    from shared.strategy_base import notional_size, notional_sizing

    btc = KNOWN_MARKETS["BTC"]
    assert notional_size(25.0, 100_000.0, btc) == 0.00025  # 25 USD on the 0.00001 lot
    assert notional_size(25.0, 100_001.0, btc) == 0.00025  # rounded up, not down
    assert notional_size(5.0, 100_000.0, btc) == 0.0002  # raised to min_base_amount
    coarse = MarketInfo(symbol="C", market_id=1, size_decimals=0, price_decimals=4, min_base_amount=1.0,
                        min_quote_amount=10.0)
    assert notional_size(5.0, 3.0, coarse) == 4.0  # 10 USD x 1.05 = 3.5 units, up to the lot
    s = notional_sizing(25.0, 0.25, coarse)
    assert (s.min_size, s.max_size, s.size_step) == (100.0, 200.0, 1.0)
    with pytest.raises(ValueError):
        notional_size(25.0, 0.0, btc)


def test_died_at_venue_separates_venue_ends_from_executor_refusals_and_own_cancels():
    from shared.events import OrderCanceled, OrderRejected
    from shared.strategy_base import died_at_venue

    def rej(code: int) -> OrderRejected:
        return OrderRejected(id=f"r{code}", ts_event=0, strategy="grid", market="BTC", client_order_index=0,
                             side="buy", price=100.0, size=1.0, code=code, reason="x")

    def cxl(reason: str) -> OrderCanceled:
        return OrderCanceled(id=reason, ts_event=0, strategy="grid", market="BTC", client_order_index=7,
                             remaining=1.0, reason=reason)

    assert not died_at_venue(rej(0)) and not died_at_venue(rej(1))      # the executor's own refusals
    assert died_at_venue(rej(21706)) and died_at_venue(rej(-1))          # venue code, failed send
    assert not died_at_venue(cxl("canceled"))                            # a cancel we asked for
    assert died_at_venue(cxl("canceled-post-only"))


def test_top_of_book_mid_needs_both_sides():
    from dataclasses import dataclass

    from shared.strategy_base import TopOfBook

    @dataclass(slots=True)
    class St(TopOfBook):
        bid: float | None = None
        ask: float | None = None

    st = St(bid=99.0)
    assert st.mid is None
    st.ask = 101.0
    assert st.mid == 100.0
    assert not hasattr(st, "__dict__")  # the mixin keeps the state's slots
