"""venue-sim margin: per-market margin fractions (orderBookDetails), per (account, market)
leverage and margin mode (tx 20), isolated margin (tx 29), the initial margin check of create
orders (21739; positions and open orders at mark, unrealized PnL counted, reduce-only passes),
and the margin fields of the account, positions and user_stats as Lighter's samples.

The venue is strict (signatures verified, every signed field of an order present): the txs are
complete and signed with the test key (``venue_tx``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from venue_tx import order as order_info
from venue_tx import register, sign_info

from services.venue_sim import crypto
from services.venue_sim.config import AccountSpec, VenueSimConfig
from services.venue_sim.margin import liquidation_price
from services.venue_sim.server import VenueServer
from shared.events import Bbo
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.venue.errors import VenueError
from shared.venue.matching import MatchingEngine

SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"
BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
ACCT, KEY = 1001, 4
GTT_MS = 28 * 24 * 3600 * 1000
"""OrderExpiry of resting (post-only/GTT) orders: 28 days after the venue time, as the SDK's default."""


class Venue:
    """A VenueServer over one BTC market whose account 1001 has ``collateral`` USD, driven by hand with
    signed txs (signatures verified, the test key registered for (1001, 4))."""

    def __init__(self, collateral: float = 1000.0, margin_checks: bool = True) -> None:
        self.now = T0
        self.engine = MatchingEngine([BTC], initial_collateral=collateral)
        self.srv = VenueServer(self.engine, [BTC], lambda: self.now, margin_checks=margin_checks,
                               accounts=[AccountSpec(index=ACCT, collateral=collateral)])
        self.srv.verify_signatures = True
        register(self.srv)
        self.coi = 0
        self.quote(100_000.0, 100_001.0)

    def quote(self, bid: float, ask: float) -> None:
        self.srv.publish(self.engine.on_market_data(Bbo(id="b", ts_event=self.now, market="BTC", bid_px=bid,
                                                        bid_sz=5.0, ask_px=ask, ask_sz=5.0)))

    def tx(self, tx_type: int, **fields: int) -> dict:
        """Send a signed tx of ``fields``; one lacking a field the signature covers (a refusal
        test) cannot be signed and goes unsigned (the venue refuses it with 21501)."""
        nonce = self.srv.nonces.get((ACCT, KEY), 0)
        info = {"AccountIndex": ACCT, "ApiKeyIndex": KEY, "Nonce": nonce, "ExpiredAt": 0, **fields}
        try:
            info = sign_info(tx_type, info)
        except crypto.TxFormatError:
            pass
        return self.srv.send_tx(tx_type, json.dumps(info))

    def order(self, size: float, price: float, *, is_ask: bool = False, tif: int = 2, reduce_only: bool = False,
              order_type: int = 0) -> dict:
        self.coi += 1
        expiry = 0 if tif == 0 else self.now // MS + GTT_MS  # IOC: none; post-only/GTT: required
        info = order_info(MarketIndex=1, ClientOrderIndex=self.coi, BaseAmount=BTC.size_to_int(size),
                          Price=BTC.price_to_int(price), IsAsk=int(is_ask), Type=order_type, TimeInForce=tif,
                          ReduceOnly=int(reduce_only), OrderExpiry=expiry)
        for common in ("AccountIndex", "ApiKeyIndex", "Nonce", "ExpiredAt"):
            del info[common]
        return self.tx(14, **info)

    def leverage(self, imf: int, mode: int = 0, market: int = 1) -> dict:
        return self.tx(20, MarketIndex=market, InitialMarginFraction=imf, MarginMode=mode)

    def margin(self, usdc: int, direction: int) -> dict:
        return self.tx(29, MarketIndex=1, USDCAmount=usdc, Direction=direction)

    def settle(self) -> None:
        """Execute every pending tx (past the speed bump)."""
        self.now += 400 * MS
        self.srv.publish(self.engine.advance(self.now))

    def buy_now(self, size: float) -> None:
        self.order(size, 100_001.0, tif=0)
        self.settle()

    def account(self) -> dict:
        return self.srv._account_json(ACCT)


def code(exc: pytest.ExceptionInfo) -> int:
    return exc.value.code


# ---------------------------------------------------------------- market metadata


def test_market_info_reads_and_serves_the_margin_fractions():
    sample = json.loads((SAMPLES / "http_order_book_details.json").read_text())["order_book_details"][0]
    m = MarketInfo.from_lighter(sample)
    assert (m.default_initial_margin_fraction, m.min_initial_margin_fraction, m.maintenance_margin_fraction,
            m.closeout_margin_fraction) == (500, 200, 120, 80)
    assert KNOWN_MARKETS["ETH"].min_initial_margin_fraction == 200
    odd = MarketInfo(symbol="X", market_id=7, size_decimals=2, price_decimals=2, min_base_amount=0.01,
                     min_quote_amount=10, default_initial_margin_fraction=1000, min_initial_margin_fraction=500,
                     maintenance_margin_fraction=300, closeout_margin_fraction=200)
    d = odd.to_lighter()
    assert (d["default_initial_margin_fraction"], d["min_initial_margin_fraction"], d["maintenance_margin_fraction"],
            d["closeout_margin_fraction"]) == (1000, 500, 300, 200)
    assert MarketInfo.from_lighter(d) == odd


async def test_order_book_details_serves_the_markets_fractions():
    v = Venue()
    m2 = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                    min_quote_amount=10, default_initial_margin_fraction=1000, min_initial_margin_fraction=333)
    srv = VenueServer(MatchingEngine([m2]), [m2], lambda: v.now)

    class Req:
        query: dict = {}

    body = json.loads((await srv.h_order_book_details(Req())).body)
    d = body["order_book_details"][0]
    assert (d["default_initial_margin_fraction"], d["min_initial_margin_fraction"]) == (1000, 333)


# ---------------------------------------------------------------- order checks


def test_order_beyond_initial_margin_is_refused_with_21739_open_orders_count():
    v = Venue(collateral=1000.0)  # default IMF 500 (20x): at most ~20,000 USD of exposure
    v.order(0.15, 90_000.0)  # 0.15 BTC x 100,000.5 mark x 5 % = 750 USD
    with pytest.raises(VenueError) as exc:
        v.order(0.1, 90_000.0)  # 0.25 BTC worst case: 1,250 USD > 1,000
    assert code(exc) == 21739 and "not enough margin" in exc.value.message
    assert v.srv.nonces[(ACCT, KEY)] == 1  # the refused tx consumed no nonce
    v.order(0.04, 90_000.0)  # 0.19 BTC: 950 USD, still covered
    v.order(0.19, 110_000.0, is_ask=True)  # asks: worst case max(|+0.19|, |-0.19|): no increase


def test_reduce_only_and_risk_lowering_orders_pass_when_under_water_unrealized_pnl_counts():
    v = Venue(collateral=1000.0)
    v.buy_now(0.15)
    assert v.engine.position(ACCT, 1).size == BTC.size_to_int(0.15)
    v.quote(95_000.0, 95_001.0)  # upnl about -750: equity about 250 < IMR 712
    with pytest.raises(VenueError) as exc:
        v.order(0.001, 90_000.0)
    assert code(exc) == 21739
    v.order(0.15, 96_000.0, is_ask=True, reduce_only=True)
    v.order(0.05, 97_000.0, is_ask=True)  # lowers the worst case: passes
    v.quote(110_000.0, 110_001.0)  # upnl about +1,500 now counts as equity
    v.order(0.2, 100_000.0)


def test_margin_checks_off_accepts_anything():
    v = Venue(collateral=10.0, margin_checks=False)
    v.order(1.0, 90_000.0)
    assert VenueSimConfig().resolved_margin_checks() is True
    assert VenueSimConfig(lockstep=True).resolved_margin_checks() is False
    assert VenueSimConfig(lockstep=True, margin_checks=True).resolved_margin_checks() is True


def test_default_collateral_covers_the_bundled_limits():
    """The default 100,000 USD at the default 20x carries the executor's default caps many times."""
    v = Venue(collateral=VenueSimConfig().initial_collateral)
    v.order(10.0, 90_000.0)  # 1,000,000 USD of BTC: 50,000 USD initial margin


# ---------------------------------------------------------------- updateLeverage (20)


def test_update_leverage_sets_imf_and_mode_and_refuses_bad_values():
    v = Venue(collateral=1000.0)
    with pytest.raises(VenueError) as exc:
        v.leverage(199)  # 50.25x: above the market's max (min IMF 200)
    assert code(exc) == 21501
    with pytest.raises(VenueError) as exc:
        v.leverage(10_001)
    assert code(exc) == 21501
    with pytest.raises(VenueError) as exc:
        v.leverage(500, mode=2)
    assert code(exc) == 21613
    with pytest.raises(VenueError) as exc:
        v.leverage(500, market=9)
    assert code(exc) == 21602
    with pytest.raises(VenueError) as exc:
        v.tx(20, MarketIndex=1, MarginMode=0)
    assert code(exc) == 21501
    body = v.leverage(1000)  # 10x
    assert body["code"] == 200 and v.srv.nonces[(ACCT, KEY)] == 1
    pos = v.account()["positions"][0]
    assert (pos["market_id"], pos["initial_margin_fraction"], pos["margin_mode"]) == (1, "10.00", 0)
    with pytest.raises(VenueError) as exc:
        v.order(0.15, 90_000.0)  # 0.15 x 100,000.5 x 10 % = 1,500 USD
    assert code(exc) == 21739
    v.leverage(200)  # 50x
    v.order(0.45, 90_000.0)  # 900 USD


def test_mode_change_with_a_position_and_lower_leverage_beyond_equity_are_refused():
    v = Venue(collateral=1000.0)
    v.buy_now(0.15)  # 750 USD at 20x
    with pytest.raises(VenueError) as exc:
        v.leverage(500, mode=1)
    assert code(exc) == 21613
    with pytest.raises(VenueError) as exc:
        v.leverage(1000)  # 10x: 1,500 USD > equity
    assert code(exc) == 21508
    v.leverage(600)  # 900 USD: covered
    assert v.account()["positions"][0]["initial_margin_fraction"] == "6.00"


# ---------------------------------------------------------------- isolated margin, updateMargin (29)


def test_update_margin_refusals():
    v = Venue(collateral=1000.0)
    with pytest.raises(VenueError) as exc:
        v.margin(1_000_000, 1)
    assert code(exc) == 21613  # cross
    v.leverage(500, mode=1)
    with pytest.raises(VenueError) as exc:
        v.margin(1_000_000, 1)
    assert code(exc) == 21614  # no position
    v.buy_now(0.1)  # isolated: 500 USD moved from cross at acceptance
    with pytest.raises(VenueError) as exc:
        v.margin(1_000_000, 2)
    assert code(exc) == 21501
    with pytest.raises(VenueError) as exc:
        v.margin(0, 1)
    assert code(exc) == 21501
    with pytest.raises(VenueError) as exc:
        v.tx(29, MarketIndex=1, Direction=1)
    assert code(exc) == 21501
    with pytest.raises(VenueError) as exc:
        v.margin(600_000_000, 1)  # 600 USD: about 500 available
    assert code(exc) == 21739
    with pytest.raises(VenueError) as exc:
        v.margin(10_000_000, 0)  # removing 10 USD leaves it below its initial margin
    assert code(exc) == 21508


def test_isolated_position_takes_margin_from_cross_and_gives_it_back_when_flat():
    v = Venue(collateral=1000.0)
    v.leverage(500, mode=1)
    v.buy_now(0.1)
    a = v.account()
    pos = a["positions"][0]
    assert pos["margin_mode"] == 1 and float(pos["allocated_margin"]) == pytest.approx(0.1 * 100_000.5 * 0.05, rel=1e-6)
    assert float(a["available_balance"]) == pytest.approx(1000 - float(pos["allocated_margin"]), abs=1.0)
    v.margin(100_000_000, 1)  # add 100 USD
    assert float(v.account()["positions"][0]["allocated_margin"]) == pytest.approx(600.0, abs=1.0)
    v.margin(50_000_000, 0)  # remove 50
    assert float(v.account()["positions"][0]["allocated_margin"]) == pytest.approx(550.0, abs=1.0)
    with pytest.raises(VenueError) as exc:
        v.order(0.1, 90_000.0)  # needs 500 more; ~450 available
    assert code(exc) == 21739
    v.order(0.1, 100_000.0, is_ask=True, tif=0, reduce_only=True)
    v.settle()
    a = v.account()
    assert a["positions"][0]["position"] == "0.00000" and a["positions"][0]["allocated_margin"] == "0.000000"
    assert float(a["available_balance"]) == pytest.approx(float(a["collateral"]), abs=1e-6)


# ---------------------------------------------------------------- views


def test_account_json_has_lighters_margin_fields():
    v = Venue(collateral=1000.0)
    v.buy_now(0.1)
    v.quote(101_000.0, 101_001.0)
    a = v.account()
    sample = json.loads((SAMPLES / "http_account.json").read_text())["accounts"][0]
    assert set(sample) <= set(a)
    assert set(sample["positions"][0]) <= set(a["positions"][0])
    p = a["positions"][0]
    upnl = 0.1 * (101_000.5 - 100_001.0)
    assert float(p["unrealized_pnl"]) == pytest.approx(upnl, abs=0.01)
    assert float(a["collateral"]) == pytest.approx(1000.0, abs=1e-6)
    assert float(a["total_asset_value"]) == pytest.approx(1000.0 + upnl, abs=0.01)
    imr = 0.1 * 101_000.5 * 0.05
    assert float(a["cross_initial_margin_requirement"]) == pytest.approx(imr, abs=0.01)
    assert float(a["available_balance"]) == pytest.approx(1000.0 + upnl - imr, abs=0.01)
    # liquidation: 1000 + 0.1 (P - 100001) = 0.1 P 1.2 %  ->  P = (100001 * 0.1 - 1000) / (0.1 * 0.988)
    assert float(p["liquidation_price"]) == pytest.approx((100_001.0 * 0.1 - 1000.0) / (0.1 * 0.988), rel=1e-4)
    assert (p["initial_margin_fraction"], p["margin_mode"], p["allocated_margin"]) == ("5.00", 0, "0.000000")


def test_ws_user_stats_and_positions_shapes():
    v = Venue(collateral=1000.0)
    v.buy_now(0.1)
    stats = v.srv.snapshot(f"user_stats:{ACCT}")["stats"]
    sample = json.loads((SAMPLES / "ws_user_stats_subscribed.json").read_text())["stats"]
    assert set(sample) <= set(stats) and set(sample["cross_stats"]) <= set(stats["cross_stats"])
    assert float(stats["leverage"]) == pytest.approx(0.1 * 100_000.5 / 1000.0, rel=1e-3)
    assert float(stats["margin_usage"]) == pytest.approx(0.1 * 100_000.5 * 0.05 / 1000.0 * 100, rel=1e-3)
    positions = v.srv.snapshot(f"account_all_positions:{ACCT}")["positions"]
    ps = json.loads((SAMPLES / "ws_account_all_positions_update.json").read_text())["positions"]["0"]
    assert set(ps) <= set(positions["1"])


def test_liquidation_price_short_isolated():
    v = Venue(collateral=1000.0)
    v.leverage(1000, mode=1)
    v.order(0.09, 100_000.0, is_ask=True, tif=0)
    v.settle()
    r = v.srv.risk(ACCT)
    mr = r.markets[1]
    assert mr.size < 0 and mr.allocated == pytest.approx(0.09 * 100_000.5 * 0.1, rel=1e-6)
    # A + s (P - mark) = |s| P mmf  ->  P = (s mark - A - upnl...) solved in liquidation_price
    liq = liquidation_price(r, 1)
    equity_at = mr.allocated + mr.upnl + mr.size * (liq - mr.mark)
    assert equity_at == pytest.approx(abs(mr.size) * liq * 0.012, rel=1e-6) and liq > mr.mark
