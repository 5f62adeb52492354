"""Executor runner: one engine step goes out as sendTxBatch requests of at most batch_max_txs;
a failed batch is resolved with nextNonce (taken prefix ok, refused tx keeps its error, the rest
is sent again); 23000 reaches the engine without stopping anything."""

from __future__ import annotations

from pydantic import SecretStr

from services.executor.config import ExecutorConfig
from services.executor.engine import RATE_LIMITED, OrderCommand
from services.executor.nonces import NonceManager
from services.executor.runner import ExecutorService
from services.executor.signer import SignedTx
from services.executor.venue import SendResult
from shared.config import StackConfig


class FakeSigner:
    def sign(self, cmd: OrderCommand, nonce: int) -> SignedTx:
        return SignedTx(14 if cmd.kind == "create" else 15, f"{cmd.kind}:{cmd.client_order_index}:{nonce}", "", nonce)


class FakeVenue:
    """Takes txs in order while their nonce matches; ``refuse`` maps a client order index to
    the error of its first attempt; ``rate_limited`` refuses whole requests with 23000."""

    def __init__(self, refuse: dict[int, int] | None = None, rate_limited: bool = False) -> None:
        self.nonce = 10
        self.refuse = dict(refuse or {})
        self.rate_limited = rate_limited
        self.requests: list[tuple[str, list[str]]] = []

    async def next_nonce(self) -> int:
        return self.nonce

    def _take(self, info: str) -> SendResult | None:
        kind, coi, nonce = info.split(":")
        if self.rate_limited:
            return SendResult(False, RATE_LIMITED, "too many requests")
        if int(nonce) != self.nonce:
            return SendResult(False, 21104, "invalid nonce")
        code = self.refuse.pop(int(coi), None)
        if code:
            return SendResult(False, code, "refused")
        self.nonce += 1
        return None

    async def send_tx(self, tx_type: int, tx_info: str) -> SendResult:
        self.requests.append(("sendTx", [tx_info]))
        return self._take(tx_info) or SendResult(True, 200, "", "h", ("h",), 99)

    async def send_tx_batch(self, tx_types: list[int], tx_infos: list[str]) -> SendResult:
        self.requests.append(("sendTxBatch", list(tx_infos)))
        for info in tx_infos:
            err = self._take(info)
            if err is not None:
                return err
        return SendResult(True, 200, "", "h0", tuple(f"h{k}" for k in range(len(tx_infos))), 98)


def service(venue: FakeVenue, batch: int = 15) -> ExecutorService:
    cfg = StackConfig(services={"executor": {"http_port": 0, "batch_max_txs": batch}})
    ecfg = cfg.section("executor", ExecutorConfig)
    svc = ExecutorService(cfg, ecfg, SecretStr("x"), redis=None)
    svc.rest = venue  # type: ignore[assignment]
    svc.signer = FakeSigner()  # type: ignore[assignment]
    svc.nonces = NonceManager(venue.next_nonce)
    return svc


def cmds(n: int) -> list[OrderCommand]:
    return [OrderCommand(kind="cancel" if k % 2 else "create", market="BTC", market_id=1, client_order_index=100 + k,
                         order_index=100 + k) for k in range(n)]


async def test_one_step_is_one_batch_request_of_at_most_batch_max_txs():
    venue = FakeVenue()
    svc = service(venue, batch=3)
    results = [await svc._send_chunk(c) for c in (cmds(7)[:3], cmds(7)[3:6], cmds(7)[6:])]
    assert [r for _, r in venue.requests] == [["create:100:10", "cancel:101:11", "create:102:12"],
                                              ["cancel:103:13", "create:104:14", "cancel:105:15"],
                                              ["create:106:16"]]
    assert [name for name, _ in venue.requests] == ["sendTxBatch", "sendTxBatch", "sendTx"]
    assert all(r.ok for rs in results for r in rs)
    assert [r.tx_hash for r in results[0]] == ["h0", "h1", "h2"]


async def test_failed_batch_taken_prefix_ok_refused_keeps_error_rest_resent():
    venue = FakeVenue(refuse={102: 21706})
    svc = service(venue)
    res = await svc._send_chunk(cmds(5))
    assert [(r.ok, r.code) for r in res] == [(True, 200), (True, 200), (False, 21706), (True, 200), (True, 200)]
    # second request: the two txs after the refused one, with fresh consecutive nonces
    assert venue.requests[1] == ("sendTxBatch", ["cancel:103:12", "create:104:13"])
    assert svc.nonces.next_nonce == venue.nonce == 14


async def test_rate_limited_batch_reports_23000_for_every_tx_and_sends_nothing_more():
    venue = FakeVenue(rate_limited=True)
    svc = service(venue)
    res = await svc._send_chunk(cmds(3))
    assert [(r.ok, r.code) for r in res] == [(False, RATE_LIMITED)] * 3
    assert len(venue.requests) == 1 and svc.nonces.next_nonce == 10
