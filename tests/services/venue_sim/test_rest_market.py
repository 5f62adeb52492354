"""venue-sim's candles, fundings, funding-rates and accountOrders endpoints (rest_market.py):
Lighter's shapes, checked field by field and parsed by the SDK's own API classes
(lighter.CandlestickApi, lighter.FundingApi, lighter.OrderApi) against a served venue.

The venue runs on its wall clock (not lockstep), which stamps every recorded event with the wall
time it is applied at; the fixture injects a stepped wall clock (``Replay``'s ``wall``/``epoch``)
that starts at the recording's first event and is moved to each recorded event's time in turn, so
the candle and funding buckets below are those of the recorded times. The venue is strict:
the SDK clients' API keys are registered and account reads carry auth tokens."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
from pathlib import Path

import aiohttp
import lighter
import pytest
from aiohttp import web
from venue_tx import auth_token, register

from services.venue_sim import runner as venue_runner
from services.venue_sim.config import VenueSimConfig
from services.venue_sim.replay import Replay
from services.venue_sim.runner import build
from shared.events import Bbo, MarketStats, Trade
from shared.markets import MarketInfo
from shared.recording import RecordingHeader, write_recording
from shared.venue.errors import VenueError
from shared.venue.matching import CreateOrder

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000  # 2025-09-15T00:00:00Z (a whole hour, day and minute)
T0_MS = T0 // 1_000_000
S = 1_000_000_000
ACCT, KEY = 1001, 4
MS = 1_000_000
SAMPLES = Path(__file__).resolve().parents[2] / "fixtures" / "lighter-samples"


def _sample(name):
    return json.loads((SAMPLES / name).read_text())


class SteppedWall:
    """A wall clock (Unix seconds) that moves only when told: the venue-sim's clock in these tests."""

    def __init__(self, t_ns: int) -> None:
        self.t_ns = t_ns

    def __call__(self) -> float:
        return self.t_ns / 1e9


async def _advance(replay, wall, t_ns, done=lambda: False):
    """Move the venue's wall clock to ``t_ns`` and let the replay loop run what is due by then
    (recorded events, pending txs): until ``done()`` or for 50 ms."""
    wall.t_ns = max(wall.t_ns, t_ns)
    replay.notify()
    for _ in range(50):
        await asyncio.sleep(0.001)
        if done():
            return


def _recording(path):
    evs = [Bbo(id="b0", ts_event=T0, market="BTC", bid_px=115000.0, bid_sz=0.5, ask_px=115000.5, ask_sz=0.5)]
    # minute 0: 3 trades; minute 2: 1 trade; funding samples in hours 0 and 1
    for i, (dt, px, sz) in enumerate([(1, 115000.0, 0.01), (20, 115010.0, 0.02), (50, 114990.0, 0.03),
                                      (130, 115005.0, 0.04)]):
        evs.append(Trade(id=f"t{i}", ts_event=T0 + dt * S, market="BTC", trade_id=str(500 + i), price=px, size=sz,
                         taker_side="buy"))
    evs.append(MarketStats(id="s0", ts_event=T0 + 10 * S, market="BTC", mark_price=115000.0, index_price=115000.0,
                           funding_rate=0.0012))
    evs.append(MarketStats(id="s1", ts_event=T0 + 3700 * S, market="BTC", mark_price=116000.0, index_price=116000.0,
                           funding_rate=-0.0004))
    evs.sort(key=lambda e: e.ts_event)
    write_recording(path, RecordingHeader(markets=[BTC], source="test"), evs)
    return path


@pytest.fixture
async def venue(tmp_path, monkeypatch):
    """A served venue-sim (wall clock, strict) that has replayed the recording, each event applied
    when the stepped wall clock reached its recorded time (the first at T0, the others 1 ms
    after); yields (server, url, api) and leaves the clock just after the last event
    (``server.wall``, ``server.replay`` for tests that move it on)."""
    rec = _recording(tmp_path / "rec.jsonl.gz")
    wall = SteppedWall(T0)
    monkeypatch.setattr(venue_runner, "Replay", functools.partial(Replay, wall=wall, epoch=wall))
    cfg = VenueSimConfig(recording=str(rec), fills_file="", speed=1, max_gap_s=7200)
    server, replay, app = build(cfg, ACCT)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    task = asyncio.create_task(replay.run())
    for n, dt_s in enumerate((0, 1, 10, 20, 50, 130, 3700)):  # the recorded events' times (+1 ms after the first)
        await _advance(replay, wall, T0 + dt_s * S + (MS if dt_s else 0), lambda n=n: replay.replayed > n)
        assert replay.replayed == n + 1  # each event applied at its own time
    assert replay.state == "finished"
    server.wall, server.replay = wall, replay
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    api = lighter.ApiClient(configuration=lighter.Configuration(host=url))
    yield server, url, api
    await api.close()
    replay.stop()
    await asyncio.wait_for(task, 5)
    await runner.cleanup()
    server.close()


async def _get(url, path, headers=None, **params):
    async with aiohttp.ClientSession() as http, http.get(f"{url}/api/v1/{path}", params=params,
                                                         headers=headers) as r:
        return r.status, await r.json()


def _sdk_client(server, url):
    """An SDK SignerClient with a fresh API key, registered for (ACCT, KEY) on the venue."""
    priv = secrets.token_hex(40)
    register(server, ACCT, KEY, priv)
    return lighter.SignerClient(url=url, account_index=ACCT, api_private_keys={KEY: priv}, chain_id=304)


async def test_candles_shape_from_recorded_trades_and_sdk_parses(venue):
    server, url, api = venue
    status, body = await _get(url, "candles", market_id=1, resolution="1m", start_timestamp=0,
                              end_timestamp=T0_MS + 3_600_000, count_back=10)
    assert status == 200 and body["code"] == 200 and body["r"] == "1m"
    first, second = body["c"]
    assert first == {"t": T0_MS, "o": 115000.0, "h": 115010.0, "l": 114990.0, "c": 114990.0, "v": 0.06,
                     "V": round(115000.0 * 0.01 + 115010.0 * 0.02 + 114990.0 * 0.03, 6), "i": 502}
    assert second["t"] == T0_MS + 120_000 and second["o"] == second["c"] == 115005.0 and second["i"] == 503
    # one 1h candle holds all four trades; count_back keeps the newest ones
    _, hour = await _get(url, "candles", market_id=1, resolution="1h", start_timestamp=0,
                         end_timestamp=T0_MS + 3_600_000, count_back=500)
    assert len(hour["c"]) == 1 and hour["c"][0]["v"] == 0.1
    _, last = await _get(url, "candles", market_id=1, resolution="1m", start_timestamp=0,
                         end_timestamp=T0_MS + 3_600_000, count_back=1)
    assert [c["t"] for c in last["c"]] == [T0_MS + 120_000]
    _, end = await _get(url, "candles", market_id=1, resolution="1m", start_timestamp=0, end_timestamp=T0_MS,
                        count_back=1, set_timestamp_to_end="true")
    assert [c["t"] for c in end["c"]] == [T0_MS + 60_000]
    # the SDK's own client parses it
    got = await lighter.CandlestickApi(api).candles(market_id=1, resolution="1m", start_timestamp=0,
                                                    end_timestamp=T0_MS + 3_600_000, count_back=10)
    assert isinstance(got, lighter.Candles) and got.r == "1m" and got.c[0].h == 115010.0 and got.c[1].i == 503


async def test_candles_include_venue_fills(venue):
    server, url, api = venue
    client = _sdk_client(server, url)
    try:
        _, resp, err = await client.create_order(market_index=1, client_order_index=7, base_amount=5_000,
                                                 price=1_151_000, is_ask=False, order_type=0, time_in_force=0,
                                                 order_expiry=0, nonce=0, api_key_index=KEY)
        assert err is None, err
        await _advance(server.replay, server.wall, server.wall.t_ns + S)  # past the taker speed bump
        for _ in range(100):
            if server.engine.fills:
                break
            await asyncio.sleep(0.02)
        f = server.engine.fills[0]
        _, body = await _get(url, "candles", market_id=1, resolution="1d", start_timestamp=0,
                             end_timestamp=T0_MS + 86_400_000, count_back=0)
        (day,) = body["c"]
        assert day["i"] == f.trade_id and day["c"] == f.price and day["v"] == round(0.1 + f.size, 5)
    finally:
        await client.close()


@pytest.mark.parametrize("params,code", [
    ({"resolution": "2m"}, 21501), ({"market_id": 9}, 21602), ({"count_back": -1}, 21501),
    ({"start_timestamp": 10, "end_timestamp": 5}, 21501), ({"end_timestamp": "x"}, 21501),
])
async def test_candles_refuses_bad_parameters(venue, params, code):
    _, url, _ = venue
    q = {"market_id": 1, "resolution": "1m", "start_timestamp": 0, "end_timestamp": T0_MS, "count_back": 5, **params}
    status, body = await _get(url, "candles", **q)
    assert status == 400 and body["code"] == code and body["message"]


async def test_fundings_from_recorded_market_stats_and_sdk_parses(venue):
    _, url, api = venue
    status, body = await _get(url, "fundings", market_id=1, resolution="1h", start_timestamp=0,
                              end_timestamp=T0_MS + 86_400_000, count_back=0)
    assert status == 200 and body["code"] == 200 and body["resolution"] == "1h"
    assert body["fundings"] == [
        {"timestamp": T0_MS // 1000, "value": f"{115000.0 * 0.0012 / 100:.8f}", "rate": "0.001200",
         "direction": "long"},
        {"timestamp": T0_MS // 1000 + 3600, "value": f"{116000.0 * 0.0004 / 100:.8f}", "rate": "0.000400",
         "direction": "short"},
    ]
    _, one = await _get(url, "fundings", market_id=1, resolution="1h", start_timestamp=0,
                        end_timestamp=T0_MS + 86_400_000, count_back=1)
    assert len(one["fundings"]) == 1 and one["fundings"][0]["direction"] == "long"
    _, day = await _get(url, "fundings", market_id=1, resolution="1d", start_timestamp=0,
                        end_timestamp=T0_MS + 86_400_000, count_back=0)
    assert [f["direction"] for f in day["fundings"]] == ["short"]  # the day's last sample
    status, bad = await _get(url, "fundings", market_id=1, resolution="1m", start_timestamp=0, end_timestamp=1,
                             count_back=0)
    assert status == 400 and bad["code"] == 21501
    got = await lighter.CandlestickApi(api).fundings(market_id=1, resolution="1h", start_timestamp=0,
                                                     end_timestamp=T0_MS + 86_400_000, count_back=0)
    assert isinstance(got, lighter.Fundings) and got.fundings[1].direction == "short"


async def test_funding_rates_and_sdk_parses(venue):
    _, url, api = venue
    status, body = await _get(url, "funding-rates")
    assert status == 200 and body == {"code": 200, "funding_rates": [
        {"market_id": 1, "exchange": "lighter", "symbol": "BTC", "rate": -0.0004}]}
    got = await lighter.FundingApi(api).funding_rates()
    assert isinstance(got, lighter.FundingRates) and got.funding_rates[0].rate == -0.0004


async def test_account_orders_by_client_order_index_auth_and_sdk_parses(venue):
    server, url, api = venue
    client = _sdk_client(server, url)
    seen = []

    def authorize(token, account):
        seen.append((token, account))
        if token != f"9999999999:{ACCT}:{KEY}:sig":
            raise VenueError(20013, "invalid auth token")  # a stand-in for the real check

    server.authorize_account = authorize
    token = f"9999999999:{ACCT}:{KEY}:sig"
    expiry_ms = server.wall.t_ns // MS + 28 * 86_400_000  # 28 days on the venue's clock
    try:
        for n, coi in enumerate((31, 32)):  # two resting bids far below the touch
            _, _, err = await client.create_order(market_index=1, client_order_index=coi, base_amount=1_000,
                                                  price=1_100_000, is_ask=False, order_type=0, time_in_force=1,
                                                  order_expiry=expiry_ms, nonce=n, api_key_index=KEY)
            assert err is None, err
        await _advance(server.replay, server.wall, server.wall.t_ns + S)  # past the maker speed bump
        for _ in range(100):
            if len(server.engine.active_orders(ACCT)) == 2:
                break
            await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/api/v1/accountOrders", params={"client_order_indexes": "32,99"},
                                headers={"Authorization": token}) as r:
                body = await r.json()
            assert r.status == 200 and [o["client_order_index"] for o in body["orders"]] == [32]
            assert body["orders"][0]["status"] == "open" and body["orders"][0]["price"] == "110000.0"
            assert seen[-1] == (token, ACCT)  # the account came from the token
            async with http.get(f"{url}/api/v1/accountOrders",
                                params={"client_order_indexes": "31", "account_index": ACCT, "auth": "bad"}) as r:
                assert r.status == 400 and (await r.json())["code"] == 20013
            for q in ({"client_order_indexes": ",".join(map(str, range(1, 22)))}, {"client_order_indexes": "a"},
                      {"client_order_indexes": ""}):
                async with http.get(f"{url}/api/v1/accountOrders", params=q, headers={"Authorization": token}) as r:
                    assert r.status == 400 and (await r.json())["code"] == 21501
        got = await lighter.OrderApi(api).account_orders(authorization=token, client_order_indexes="31,32",
                                                         account_index=ACCT)
        assert isinstance(got, lighter.Orders) and sorted(o.client_order_index for o in got.orders) == [31, 32]
    finally:
        await client.close()


async def test_shapes_match_lighters_samples(venue):
    """Field names exactly as Lighter's samples (tests/fixtures/lighter-samples, PROVENANCE.md)."""
    server, url, _ = venue
    _, candles = await _get(url, "candles", market_id=1, resolution="1m", start_timestamp=0,
                            end_timestamp=T0_MS + 3_600_000, count_back=10)
    ref = _sample("http_candles.json")
    assert set(candles) == set(ref) and set(candles["c"][0]) == set(ref["c"][0])
    assert all(type(candles["c"][0][k]) is type(ref["c"][0][k]) for k in ("t", "i"))
    _, fundings = await _get(url, "fundings", market_id=1, resolution="1h", start_timestamp=0,
                             end_timestamp=T0_MS + 86_400_000, count_back=0)
    ref = _sample("http_fundings.json")
    assert set(fundings) == set(ref) and set(fundings["fundings"][0]) == set(ref["fundings"][0])
    assert all(type(fundings["fundings"][0][k]) is type(v) for k, v in ref["fundings"][0].items())
    misc = _sample("http_misc_ccxt_comment_examples.json")
    _, rates = await _get(url, "funding-rates")
    ref = misc["funding_rates_response"]
    assert set(rates) == set(ref) and set(rates["funding_rates"][0]) == set(ref["funding_rates"][0])
    server.engine.submit(CreateOrder(
        account=ACCT, market_id=1, client_order_index=3, base_amount=1_000, price=1_100_000, is_ask=False,
        order_type="limit", time_in_force="gtt"), server.engine.now_ns)
    server.engine.advance(server.engine.now_ns + 10**9)
    register(server)
    _, orders = await _get(url, "accountOrders", {"Authorization": auth_token()}, client_order_indexes="3",
                           account_index=ACCT)
    ref_order = misc["accountActiveOrders_response"]["orders"][0]
    assert set(ref_order) <= set(orders["orders"][0])


async def test_order_book_orders_shows_the_ladder_and_names_only_pure_own_levels(venue):
    """Paced venue-sim (depth on): ``orderBookOrders`` lists the touch and 10 synthetic levels a
    side; a level that mixes synthetic size with our order is the book's, a level of our order
    alone is ours."""
    server, url, api = venue
    eng = server.engine
    step = -(-1_150_000 // 10_000)  # 1 bps of the bid, rounded up: 115 ticks
    for coi, px in ((1, 1_150_000 - step), (2, 1_140_000)):
        eng.submit(CreateOrder(account=ACCT, market_id=1, client_order_index=coi, base_amount=1_000, price=px,
                               is_ask=False, order_type="limit", time_in_force="gtt"), eng.now_ns)
    eng.advance(eng.now_ns + 10**9)
    ob = await lighter.OrderApi(api).order_book_orders(1, 100)
    assert len(ob.asks) == 11 and len(ob.bids) == 12
    by_price = {o.price: o for o in ob.bids}
    mixed, alone = by_price["114988.5"], by_price["114000.0"]
    assert mixed.owner_account_index == 0 and mixed.remaining_base_amount == "0.51000"
    assert alone.owner_account_index == ACCT and alone.remaining_base_amount == "0.01000"
