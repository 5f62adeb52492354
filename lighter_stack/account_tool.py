"""``lighter-stack account``: the account as the venue reports it (REST ``account``,
``accountActiveOrders``), and with ``--trades`` the venue's trade history (REST ``trades``)
compared with the ledger's fills.

Comparison (:func:`compare_trades`): the ledger may split one venue trade over several
strategies (rows sharing ``venue_trade_id``); their sizes are summed per trade id. A difference
is a venue trade missing from the ledger, a ledger trade id the venue does not list (only within
the time span the venue's pages cover), or a trade whose market, side or size differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from services.executor.signer import Signer
from services.executor.venue import LighterRest
from shared.venue.errors import VenueError

Echo = Callable[[str], None]
SIZE_TOL = 1e-9


async def venue_trades(rest: LighterRest, account_index: int, auth: str | None, max_pages: int = 50) -> list[dict]:
    """Every trade of the account the venue lists (``trades?account_index=&sort_by=timestamp``,
    100 per page, following ``next_cursor`` at most ``max_pages`` pages), newest first.

    Raises:
        VenueError: a request failed.
    """
    out: list[dict] = []
    cursor = ""
    for _ in range(max_pages):
        params: dict[str, Any] = {"account_index": account_index, "sort_by": "timestamp", "limit": 100}
        if cursor:
            params["cursor"] = cursor
        body = await rest.get("trades", params, auth=auth)
        out.extend(body.get("trades") or [])
        cursor = str(body.get("next_cursor") or "")
        if not cursor:
            break
    return out


def compare_trades(account_index: int, venue: list[dict], ledger: list[dict], symbols: dict[int, str]) -> list[str]:
    """Differences between the venue's trades of ``account_index`` (Lighter Trade objects) and
    the ledger's fills (dicts with ``venue_trade_id``, ``market``, ``side``, ``size``,
    ``ts_event`` ns); ``symbols`` maps market ids to symbols. Empty when they agree."""
    v: dict[str, tuple[str, str, float, int]] = {}
    for t in venue:
        side = "buy" if int(t.get("bid_account_id", -1)) == account_index else "sell"
        v[str(t["trade_id"])] = (symbols.get(int(t["market_id"]), str(t["market_id"])), side, float(t["size"]),
                                 int(t.get("timestamp", 0)) * 1_000_000)
    led: dict[str, list] = {}
    for f in ledger:
        tid = str(f.get("venue_trade_id") or "")
        if not tid:
            continue
        row = led.setdefault(tid, [f["market"], f["side"], 0.0, int(f["ts_event"])])
        row[2] += float(f["size"])
    out: list[str] = []
    span = (min(x[3] for x in v.values()), max(x[3] for x in v.values())) if v else None
    for tid, (mkt, side, size, _ts) in sorted(v.items()):
        if tid not in led:
            out.append(f"venue trade {tid} ({side} {size:g} {mkt}) is not in the ledger")
            continue
        lm, ls, lsize, _ = led[tid]
        if (lm, ls) != (mkt, side) or abs(lsize - size) > SIZE_TOL:
            out.append(f"trade {tid}: venue {side} {size:g} {mkt}, ledger {ls} {lsize:g} {lm}")
    for tid, (lm, ls, lsize, ts) in sorted(led.items()):
        if tid not in v and span is not None and span[0] <= ts <= span[1]:
            out.append(f"ledger trade {tid} ({ls} {lsize:g} {lm}) is not listed by the venue")
        elif tid not in v and span is None:
            out.append(f"ledger trade {tid} ({ls} {lsize:g} {lm}) is not listed by the venue (it lists none)")
    return out


def ledger_fills(db_url: str | None) -> list[dict]:
    """The ledger's fills with a venue trade id (read-only).

    Raises:
        FileNotFoundError, services.ledger.store.SchemaError: see ``open_store``.
    """
    from sqlalchemy import select

    from services.ledger.models import FillRow as F
    from services.ledger.report import open_store

    store = open_store(db_url)
    try:
        with store.db.connect() as conn:
            rows = conn.execute(select(F.venue_trade_id, F.market, F.side, F.size, F.ts_event)
                                .where(F.venue_trade_id != "")).all()
    finally:
        store.close()
    return [{"venue_trade_id": r[0], "market": r[1], "side": r[2], "size": r[3], "ts_event": r[4]} for r in rows]


async def account_report(url: str, account_index: int, key: SecretStr | None, api_key_index: int, chain_id: int,
                         trades: bool, db_url: str | None, echo: Echo = print) -> int:
    """Print the account (and with ``trades`` the venue/ledger comparison); returns the exit
    code: 0, 1 when the trades differ or a read failed."""
    rest = LighterRest(url, timeout_s=10.0)
    signer = None
    try:
        token = None
        if key is not None:
            signer = await Signer.create(url, account_index, api_key_index, chain_id, key)
            token = signer.auth_token(600)
        try:
            markets = await rest.markets()
            body = await rest.get("account", {"by": "index", "value": account_index})
        except VenueError as exc:
            echo(f"venue {url}: {exc}")
            return 1
        a = (body.get("accounts") or [{}])[0]
        echo(f"account {account_index}  L1 {a.get('l1_address', '?')}  collateral {a.get('collateral')} USDC  "
             f"available {a.get('available_balance')} USDC")
        for p in a.get("positions") or []:
            if float(p.get("position") or 0):
                echo(f"  position {p.get('symbol')}: {'-' if int(p.get('sign', 1)) < 0 else ''}{p.get('position')} "
                     f"@ {p.get('avg_entry_price')}  unrealized {p.get('unrealized_pnl')}")
        for m in markets.values():
            try:
                orders = await rest.active_orders(account_index, m.market_id, token or "")
            except VenueError as exc:
                echo(f"  open orders {m.symbol}: {exc}")
                continue
            for o in orders:
                echo(f"  order {m.symbol} {'sell' if o.get('is_ask') else 'buy'} {o.get('remaining_base_amount')} "
                     f"@ {o.get('price')} ({o.get('time_in_force')}, client order index {o.get('client_order_index')})")
        if not trades:
            return 0
        vt = await venue_trades(rest, account_index, token)
        diffs = compare_trades(account_index, vt, ledger_fills(db_url),
                               {m.market_id: m.symbol for m in markets.values()})
        echo(f"trades: venue lists {len(vt)}; {len(diffs)} difference(s) with the ledger")
        for d in diffs:
            echo(f"  {d}")
        return 1 if diffs else 0
    except (VenueError, FileNotFoundError) as exc:
        echo(f"error: {exc}")
        return 1
    finally:
        if signer is not None:
            await signer.close()
        await rest.close()
