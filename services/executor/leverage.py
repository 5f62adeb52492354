"""Executor start-up: set each configured market's leverage and margin mode on the venue.

``services.executor.leverage`` (:class:`~services.executor.config.LeverageSetting` per market)
becomes one ``updateLeverage`` tx (type 20, Lighter: ``MarketIndex``, ``InitialMarginFraction``
= ``int(10000 / leverage)``, ``MarginMode`` 0 cross / 1 isolated) per market, signed with the
next nonce and sent with ``sendTx`` under the nonce manager's lock, before reconciliation. The
start-up fails closed (:class:`LeverageError`): a market that is not traded, a leverage above
the market's maximum (``10000 / min_initial_margin_fraction`` of ``orderBookDetails``), a
signing error, a venue refusal (e.g. 21613 invalid margin mode, 21508 below initial margin) or
an unknown outcome (transport error) stops the executor with a message naming the market.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from shared.markets import MarketInfo

from .config import LeverageSetting
from .metrics import NONCE_RESYNCS
from .nonces import NonceError, NonceManager
from .signer import Signer, SignError
from .venue import LighterRest

log = logging.getLogger("executor")


class LeverageError(RuntimeError):
    """The configured leverage could not be set; the message names the market and the reason."""


@dataclass(frozen=True, slots=True)
class LeverageStep:
    """One market's ``updateLeverage``: ``imf`` (1/10000) and ``mode`` (0 cross, 1 isolated)."""

    market: MarketInfo
    leverage: float
    imf: int
    mode: int

    def describe(self) -> str:
        """E.g. ``BTC 5x cross (InitialMarginFraction 2000)``."""
        return (f"{self.market.symbol} {self.leverage:g}x {'isolated' if self.mode else 'cross'} "
                f"(InitialMarginFraction {self.imf})")


def leverage_plan(settings: Mapping[str, LeverageSetting], markets: Mapping[str, MarketInfo]) -> list[LeverageStep]:
    """The ``updateLeverage`` txs of ``settings`` (by symbol), in symbol order.

    Raises:
        LeverageError: a symbol not among ``markets`` (the traded markets), or a leverage above
            the market's maximum (IMF below ``min_initial_margin_fraction``).
    """
    out = []
    for sym in sorted(settings):
        s = settings[sym]
        m = markets.get(sym.upper())
        if m is None:
            raise LeverageError(f"services.executor.leverage.{sym}: not a traded market (trading {sorted(markets)})")
        step = LeverageStep(m, s.leverage, s.initial_margin_fraction, s.mode_code)
        if step.imf < m.min_initial_margin_fraction:
            raise LeverageError(f"services.executor.leverage.{sym}.leverage: {s.leverage:g}x is above {m.symbol}'s "
                                f"maximum {10_000 / m.min_initial_margin_fraction:g}x "
                                f"(min_initial_margin_fraction {m.min_initial_margin_fraction})")
        out.append(step)
    return out


async def apply_leverage(rest: LighterRest, nonces: NonceManager, signer: Signer, plan: list[LeverageStep]) -> None:
    """Send the plan's ``updateLeverage`` txs one by one (``sendTx``; a 21104 resyncs the nonce
    and is tried once more).

    Raises:
        LeverageError: the first step the signer or the venue refused, or whose outcome is
            unknown (the message carries the venue's code and message).
    """
    for step in plan:
        code, message = await _send(rest, nonces, signer, step)
        if code != 200:
            what = "outcome unknown" if code is None else f"venue refused it: {code}"
            raise LeverageError(f"setting leverage {step.describe()} failed, {what} {message}".rstrip())
        log.info("leverage set: %s", step.describe())


async def _send(rest: LighterRest, nonces: NonceManager, signer: Signer, step: LeverageStep) -> tuple[int | None, str]:
    async with nonces.lock:
        for attempt in range(2):
            try:
                await nonces.ensure_synced()
            except NonceError as exc:
                return None, str(exc)
            nonce = nonces.allocate()
            try:
                tx = signer.sign_update_leverage(step.market.market_id, step.imf, step.mode, nonce)
            except SignError as exc:
                nonces.release(nonce)
                raise LeverageError(f"signing leverage {step.describe()} failed: {exc}") from None
            res = await rest.send_tx(tx.tx_type, tx.tx_info)
            if res.ok:
                return 200, ""
            nonces.report_error(res.code, nonce)
            if nonces.needs_sync:
                NONCE_RESYNCS.inc()
            if res.code == 21104 and attempt == 0:
                continue
            return res.code, res.message
    return None, "unreachable"  # pragma: no cover
