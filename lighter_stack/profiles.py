"""Market profiles: the maker's and the hedger's sizes for one market, derived from its Lighter
metadata, a mid price and the account balance (seed 001's ``set_market.py``/``apply_profile.py``).

A profile is a YAML fragment of the stack config (``services.maker``, ``services.hedger``,
``services.executor``), layered over the base file with ``--profile`` /
``LIGHTER_STACK_PROFILES`` (see :func:`shared.config.load_config`). docs/profiles.md explains it.

Rules (lot = ``10**-size_decimals`` base units; ``floor``/``ceil`` to the lot are exact decimal
roundings; the ratios are seed 001's SOL profile, docs/state_packet.md, config.yaml at 2fe908c:
size 0.064, size_min 0.061, size_max 0.072, notional floor 10.5, soft cap 0.10, hedger trigger
0.05 / target 0.02 / clip 0.10, guard 0.3 units / 50 USD on a 30 USD balance):

1. ``notional_floor_usd = min_quote_amount · (1 + notional_margin)`` [5 %: 10 → 10.5 USD], so a
   quote still clears the venue minimum after the price moves a little.
2. ``size_min = max(min_base_amount, ceil_lot(notional_floor_usd / mid))`` [0.061 at mid 173].
3. ``size = floor_lot(size_min · sizing_multiplier)``, at least ``size_min`` [1.05: 0.064].
4. ``size_max = floor_lot(size · size_max_ratio)``, at least ``size`` [1.125 = 0.072/0.064].
5. ``inventory_soft_cap = floor_lot(size · soft_cap_ratio)`` [1.5625 = 0.10/0.064: 0.10].
6. ``max_position_units = floor_lot(inventory_soft_cap · max_position_ratio)`` [3: 0.30].
7. ``max_inventory_notional_usd = floor(balance_usd · max_leverage)`` whole USD [1.67: 50 on
   30 USD]. Refused (:class:`ProfileError`) when it does not cover the soft cap at the mid.
8. Hedger: ``trigger = floor_lot(soft cap · 0.5)``, ``target = floor_lot(soft cap · 0.2)``,
   ``clip = max(soft cap, size_min)``, ``min_clip = size_min`` (the smallest order that clears
   the venue minimums with the margin) [0.05 / 0.02 / 0.10 / 0.061].

Where the metadata comes from (:func:`market_info`): ``--url`` (venue-sim or Lighter REST,
``GET /api/v1/orderBookDetails``), a ``--metadata`` file (an ``orderBookDetails`` payload or a
recording), else the bundled table :data:`BUNDLED_MARKETS`. The mid: ``--mid``, else the URL's
``mark_price``/``last_trade_price``, else the last BBO of the bundled recording.
"""

from __future__ import annotations

import gzip
import json
import math
import urllib.request
from dataclasses import asdict, dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import yaml

from shared.events import Bbo
from shared.importers import BUNDLED_RECORDING
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.recording import RecordingError, read_recording

#: Metadata known offline: the bundled recording's markets (BTC, ETH; Lighter orderBookDetails,
#: 2025) and SOL (market 2) as seed 001 traded it: 3 size and 3 price decimals (its size and
#: price scales of 1000), 10 USD minimum notional; ``min_base_amount`` 0.05 SOL is an
#: assumption (not in the bundled samples) — query ``--url`` for the live values.
BUNDLED_MARKETS: dict[str, MarketInfo] = {
    **KNOWN_MARKETS,
    "SOL": MarketInfo(symbol="SOL", market_id=2, size_decimals=3, price_decimals=3,
                      min_base_amount=0.05, min_quote_amount=10.0),
}


class ProfileError(ValueError):
    """A profile cannot be derived: unknown market, no mid, or a balance too small; the
    message says which and what would fix it."""


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    """The ratios of the rules (module docstring); defaults reproduce seed 001's SOL profile."""

    notional_margin: float = 0.05
    sizing_multiplier: float = 1.05
    size_max_ratio: float = 1.125
    soft_cap_ratio: float = 1.5625
    max_position_ratio: float = 3.0
    max_leverage: float = 1.67
    trigger_ratio: float = 0.5
    target_ratio: float = 0.2


@dataclass(frozen=True, slots=True)
class MarketProfile:
    """A derived profile. Sizes in base units, notionals in USD, ``tick`` in USD, ``lot`` in
    base units; ``mid`` and ``balance_usd`` are the inputs."""

    symbol: str
    market_id: int
    mid: float
    balance_usd: float
    tick: float
    lot: float
    notional_floor_usd: float
    size_min: float
    size: float
    size_max: float
    inventory_soft_cap: float
    max_position_units: float
    max_inventory_notional_usd: float
    hedger_trigger_units: float
    hedger_target_units: float
    hedger_max_clip_units: float
    hedger_min_clip_units: float

    def config_fragment(self) -> dict[str, Any]:
        """The stack-config fragment: maker ``sizes``/``tick_size``/``soft_inventory``/
        ``max_inventory_units``/``min_notional_usd``, hedger ``markets.SYM`` and executor
        ``max_position``/``max_notional_usd`` for this market."""
        s = self.symbol
        return {"services": {
            "maker": {
                "min_notional_usd": self.notional_floor_usd,
                "sizes": {s: {"min_size": self.size_min, "max_size": self.size_max, "size_step": self.lot}},
                "tick_size": {s: self.tick},
                "soft_inventory": {s: self.inventory_soft_cap},
                "max_inventory_units": {s: self.max_position_units},
            },
            "hedger": {"markets": {s: {
                "trigger_units": self.hedger_trigger_units, "target_units": self.hedger_target_units,
                "max_clip_units": self.hedger_max_clip_units, "min_clip_units": self.hedger_min_clip_units}}},
            "executor": {"max_position": {s: self.max_position_units},
                         "max_notional_usd": {s: self.max_inventory_notional_usd}},
        }}

    def to_yaml(self) -> str:
        """The profile file: a comment header with every derived number, then the fragment."""
        head = [f"# lighter-stack market profile: {self.symbol} (market {self.market_id})",
                f"# derived from mid {self.mid:g} USD and balance {self.balance_usd:g} USD (docs/profiles.md)",
                "# apply: lighter-stack run maker --profile THIS_FILE (or LIGHTER_STACK_PROFILES=THIS_FILE)",
                f"# add {self.symbol} to the top-level `markets` to collect and quote it"]
        head += [f"#   {k}: {v}" for k, v in asdict(self).items()]
        return "\n".join(head) + "\n" + yaml.safe_dump(self.config_fragment(), sort_keys=False)


def _d(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _lots(x: Decimal, lot: Decimal, rounding: str) -> Decimal:
    return (x / lot).to_integral_value(rounding) * lot


def derive_profile(m: MarketInfo, mid: float, balance_usd: float,
                   opts: ProfileOptions | None = None) -> MarketProfile:
    """Derive a market's profile (rules in the module docstring).

    Args:
        m: the market's Lighter metadata (decimals, minimums).
        mid: mid price, USD (> 0).
        balance_usd: account balance the inventory cap is sized on, USD (> 0).
        opts: the rule ratios (default: seed 001's).

    Raises:
        ProfileError: ``mid`` or ``balance_usd`` not positive, or a balance whose inventory cap
            does not cover the soft cap at ``mid`` (the message gives the balance needed).
    """
    o = opts or ProfileOptions()
    if not (mid > 0 and math.isfinite(mid)):
        raise ProfileError(f"{m.symbol}: mid must be a positive price, got {mid!r}")
    if not (balance_usd > 0 and math.isfinite(balance_usd)):
        raise ProfileError(f"{m.symbol}: balance_usd must be positive, got {balance_usd!r}")
    lot = Decimal(1).scaleb(-m.size_decimals)
    dmid = _d(mid)
    floor_usd = _d(m.min_quote_amount) * (1 + _d(o.notional_margin))
    size_min = max(_d(m.min_base_amount), _lots(floor_usd / dmid, lot, ROUND_CEILING))
    size_min = max(size_min, lot)
    size = max(size_min, _lots(size_min * _d(o.sizing_multiplier), lot, ROUND_FLOOR))
    size_max = max(size, _lots(size * _d(o.size_max_ratio), lot, ROUND_FLOOR))
    soft = max(size_min, _lots(size * _d(o.soft_cap_ratio), lot, ROUND_FLOOR))
    max_pos = max(soft, _lots(soft * _d(o.max_position_ratio), lot, ROUND_FLOOR))
    max_notional = (_d(balance_usd) * _d(o.max_leverage)).to_integral_value(ROUND_FLOOR)
    if max_notional < soft * dmid:
        need = math.ceil(math.ceil(float(soft * dmid) - 1e-9) / o.max_leverage - 1e-9)
        raise ProfileError(
            f"{m.symbol}: balance {balance_usd:g} USD gives an inventory cap of {max_notional} USD "
            f"(x{o.max_leverage:g}), below the soft inventory cap {float(soft):g} {m.symbol} = {float(soft * dmid):.2f} USD "
            f"at mid {mid:g}; use a balance of at least {need} USD")
    trigger = max(lot, _lots(soft * _d(o.trigger_ratio), lot, ROUND_FLOOR))
    target = min(_lots(soft * _d(o.target_ratio), lot, ROUND_FLOOR), trigger - lot)
    return MarketProfile(
        symbol=m.symbol, market_id=m.market_id, mid=mid, balance_usd=balance_usd, tick=m.tick, lot=float(lot),
        notional_floor_usd=float(floor_usd), size_min=float(size_min), size=float(size), size_max=float(size_max),
        inventory_soft_cap=float(soft), max_position_units=float(max_pos),
        max_inventory_notional_usd=float(max_notional), hedger_trigger_units=float(trigger),
        hedger_target_units=float(max(target, Decimal(0))), hedger_max_clip_units=float(max(soft, size_min)),
        hedger_min_clip_units=float(size_min))


# ---------------------------------------------------------------------------------------------
# metadata and mid sources
# ---------------------------------------------------------------------------------------------


def parse_order_book_details(payload: dict[str, Any]) -> dict[str, tuple[MarketInfo, float | None]]:
    """``orderBookDetails`` JSON -> ``{symbol: (MarketInfo, price)}``; price is ``mark_price``,
    else ``last_trade_price`` (USD), ``None`` when absent or not positive.

    Raises:
        ProfileError: not an ``orderBookDetails`` payload, or an entry without the required fields.
    """
    entries = payload.get("order_book_details") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise ProfileError("not an orderBookDetails payload (no order_book_details list)")
    out: dict[str, tuple[MarketInfo, float | None]] = {}
    for d in entries:
        try:
            info = MarketInfo.from_lighter(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"orderBookDetails entry {d.get('symbol', '?')!r}: bad or missing field {exc}") from None
        price = None
        for key in ("mark_price", "last_trade_price"):
            try:
                v = float(d.get(key) or 0)
            except (TypeError, ValueError):
                continue
            if v > 0:
                price = v
                break
        out[info.symbol.upper()] = (info, price)
    return out


def fetch_order_book_details(url: str, timeout_s: float = 10.0) -> dict[str, tuple[MarketInfo, float | None]]:
    """GET ``{url}/api/v1/orderBookDetails`` (venue-sim or Lighter REST) and parse it.

    Raises:
        ProfileError: the request failed or the answer is not an ``orderBookDetails`` payload.
    """
    full = url.rstrip("/") + "/api/v1/orderBookDetails"
    try:
        with urllib.request.urlopen(full, timeout=timeout_s) as resp:  # noqa: S310 - an operator-given URL
            payload = json.loads(resp.read())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read {full}: {exc}") from None
    return parse_order_book_details(payload)


def _is_recording(p: Path) -> bool:
    return p.name.endswith((".jsonl", ".jsonl.gz"))


def load_metadata_file(path: Path) -> dict[str, tuple[MarketInfo, float | None]]:
    """Markets from an ``orderBookDetails`` JSON file or a recording (its header's markets and
    the last BBO mid of each).

    Raises:
        ProfileError: unreadable or of neither kind.
    """
    try:
        if _is_recording(path):
            return {m.symbol.upper(): (m, mid) for m, mid in _recording_markets(path)}
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            return parse_order_book_details(json.load(fh))
    except (OSError, ValueError, RecordingError) as exc:
        raise ProfileError(f"cannot read market metadata from {path}: {exc}") from None


def _recording_markets(path: Path) -> list[tuple[MarketInfo, float | None]]:
    header, events = read_recording(path)
    last: dict[str, float] = {}
    for ev in events:
        if isinstance(ev, Bbo) and ev.bid_px > 0 and ev.ask_px > 0:
            last[ev.market] = ev.mid
    return [(m, last.get(m.symbol)) for m in header.markets]


def market_info(symbol: str, url: str | None = None, metadata: Path | None = None,
                mid: float | None = None) -> tuple[MarketInfo, float]:
    """The metadata and mid of ``symbol`` (sources in the module docstring).

    Raises:
        ProfileError: unknown symbol in the chosen source, or no mid known (pass ``mid``).
    """
    sym = symbol.upper()
    price: float | None = None
    if url:
        table = fetch_order_book_details(url)
        where = url
    elif metadata is not None:
        table = load_metadata_file(metadata)
        where = str(metadata)
    else:
        table = {s: (m, None) for s, m in BUNDLED_MARKETS.items()}
        where = "the bundled metadata"
        if BUNDLED_RECORDING.exists():
            try:
                for m, last in _recording_markets(BUNDLED_RECORDING):
                    if m.symbol.upper() in table and last:
                        table[m.symbol.upper()] = (table[m.symbol.upper()][0], last)
            except RecordingError:
                pass
    if sym not in table:
        raise ProfileError(f"market {sym} not in {where} (known: {', '.join(sorted(table))})")
    info, price = table[sym]
    if mid is not None:
        price = mid
    if price is None:
        raise ProfileError(f"no mid price for {sym} in {where}: pass --mid")
    return info, float(price)


def write_profile(profile: MarketProfile, out: Path) -> None:
    """Write ``profile.to_yaml()`` to ``out`` (parent folders created)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(profile.to_yaml())
