"""Signing and sending order transactions: one ``sendTx`` or one ``sendTxBatch`` request.

The commands of one engine step are signed with consecutive nonces (under the nonce manager's
lock) and sent in one request. When a batch fails, ``nextNonce`` tells how many of its txs the
venue took (they count as sent); the refused one gets the error and the ones after it are sent
again (up to three rounds). Error 23000 (too many requests) is returned to the caller (the
engine backs off); it is counted and logged here.
"""

from __future__ import annotations

import logging
import time

from .engine import RATE_LIMITED, OrderCommand
from .metrics import NONCE_RESYNCS, RATE_LIMITED_TOTAL, REQUESTS, SEND_SECONDS, VOLUME_QUOTA
from .nonces import NonceError, NonceManager
from .signer import Signer, SignError
from .venue import LighterRest, SendResult

log = logging.getLogger("executor")


def _count(endpoint: str, res: SendResult) -> None:
    """Count one request and its outcome (requests, volume quota left, 23000)."""
    REQUESTS.labels(endpoint).inc()
    if res.volume_quota_remaining is not None:
        VOLUME_QUOTA.set(res.volume_quota_remaining)
    if res.code == RATE_LIMITED:
        RATE_LIMITED_TOTAL.inc()
        log.warning("%s: 23000 too many requests (%s); the engine backs off", endpoint, res.message)


async def send_chunk(rest: LighterRest, nonces: NonceManager, signer: Signer,
                     chunk: list[OrderCommand]) -> list[SendResult]:
    """Send up to ``batch_max_txs`` commands in one request (``sendTx`` for one, via
    :func:`send_one`); returns one result per command, in order. After a failed batch ``nextNonce`` says how many txs were
    taken; the refused one keeps the error, later ones are sent again (up to three rounds;
    not after 23000 or an unknown outcome)."""
    if len(chunk) == 1:
        return [await send_one(rest, nonces, signer, chunk[0])]
    results: list[SendResult | None] = [None] * len(chunk)
    todo = list(range(len(chunk)))
    async with nonces.lock:
        for _round in range(3):
            if not todo:
                break
            try:
                await nonces.ensure_synced()
            except NonceError as exc:
                for i in todo:
                    results[i] = SendResult(False, -1, str(exc))
                todo = []
                break
            signed = []
            for i in todo:
                nonce = nonces.allocate()
                try:
                    signed.append((i, signer.sign(chunk[i], nonce)))
                except SignError as exc:
                    nonces.release(nonce)
                    results[i] = SendResult(False, -1, f"signing failed: {exc}")
            todo = []
            if not signed:
                break
            t0 = time.perf_counter()
            res = await rest.send_tx_batch([tx.tx_type for _, tx in signed], [tx.tx_info for _, tx in signed])
            SEND_SECONDS.observe(time.perf_counter() - t0)
            _count("sendTxBatch", res)
            if res.ok:
                for k, (i, _tx) in enumerate(signed):
                    h = res.tx_hashes[k] if k < len(res.tx_hashes) else ""
                    results[i] = SendResult(True, 200, res.message, h, (h,), res.volume_quota_remaining)
                continue
            try:
                taken = max(0, min(len(signed), await nonces.sync() - signed[0][1].nonce))
                NONCE_RESYNCS.inc()
            except NonceError as exc:
                log.warning("batch failed (%s %s) and nextNonce too: %s", res.code, res.message, exc)
                for i, _tx in signed:
                    results[i] = SendResult(False, None, f"{res.message}; outcome unknown: {exc}")
                break
            for k, (i, _tx) in enumerate(signed):
                if k < taken:
                    results[i] = SendResult(True, 200, "taken (batch)", "")
                elif res.code in (RATE_LIMITED, None) or (k == taken and res.code != 21104):
                    results[i] = res
                else:
                    todo.append(i)
        for i in todo:
            results[i] = SendResult(False, -1, "not sent: the batch kept failing")
    return [r if r is not None else SendResult(False, -1, "not sent") for r in results]


async def send_one(rest: LighterRest, nonces: NonceManager, signer: Signer, cmd: OrderCommand) -> SendResult:
    """Sign ``cmd`` with the next nonce and send it (``sendTx``). A 21104 (invalid nonce) resyncs
    the nonce and is tried once more; other errors are returned as the result."""
    async with nonces.lock:
        for attempt in range(2):
            try:
                await nonces.ensure_synced()
            except NonceError as exc:
                return SendResult(False, -1, str(exc))
            nonce = nonces.allocate()
            try:
                tx = signer.sign(cmd, nonce)
            except SignError as exc:
                nonces.release(nonce)
                return SendResult(False, -1, f"signing failed: {exc}")
            t0 = time.perf_counter()
            res = await rest.send_tx(tx.tx_type, tx.tx_info)
            SEND_SECONDS.observe(time.perf_counter() - t0)
            _count("sendTx", res)
            if res.ok:
                return res
            nonces.report_error(res.code, nonce)
            if nonces.needs_sync:
                NONCE_RESYNCS.inc()
            if res.code == 21104 and attempt == 0:
                continue
            return res
    return SendResult(False, -1, "unreachable")  # pragma: no cover
