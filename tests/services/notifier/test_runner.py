"""The notifier service on a real Redis against the fake Bot API (tests/support/fake_telegram.py):
batched delivery into the group's topic, commands only from the configured chat, Control events
on the control stream, the answers to /status, the Alertmanager webhook, a 429 retried, the
history folded silently at start, and the token in no log line."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from fake_telegram import FakeBotApi

from services.notifier.config import NotifierConfig
from services.notifier.runner import NotifierService, make_chat
from shared.bus import Bus
from shared.events import Control, Fill, RiskState
from shared.redis_util import free_port

CHAT = -1001234
THREAD = 77
T0 = 1_757_900_000 * 10**9


def fill(i: int, side: str, size: float, price: float) -> Fill:
    return Fill(id=f"f{i}", ts_event=T0 + i, source="executor", fill_id=f"fill{i}", strategy="trend",
                market="BTC", side=side, price=price, size=size)


@pytest.fixture
async def fake_bot():
    fake = await FakeBotApi().start()
    yield fake
    await fake.stop()


def make(bus: Bus, fake: FakeBotApi, monkeypatch, **over) -> NotifierService:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    cfg = NotifierConfig(chat_id=CHAT, thread_id=THREAD, api_base_url=fake.base_url, min_interval_s=0.3,
                         batch_window_s=0.3, poll_timeout_s=1, block_ms=50, **over)
    return NotifierService(bus, 1001, cfg, make_chat(cfg))


async def test_notices_batched_into_the_topic_and_commands_from_the_chat_only(
        fake_bot, redis_client, namespace, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    bus = Bus(redis_client, namespace)
    svc = make(bus, fake_bot, monkeypatch)
    port = free_port()
    task = asyncio.create_task(svc.run(http_port=port))
    try:
        await asyncio.sleep(0.3)
        await bus.publish(bus.streams.exec(1001), [fill(1, "buy", 0.01, 100_000.0), fill(2, "sell", 0.01, 100_100.0),
                                                   RiskState(id="r", ts_event=T0 + 3, state="reducing",
                                                             reason="flatten")])
        sent = await fake_bot.wait_sent(lambda s: len(s) >= 1)
        first = sent[0]
        # three notices, one message: batched
        assert first["chat_id"] == CHAT and first["message_thread_id"] == THREAD and first["parse_mode"] == "HTML"
        assert "Opened long" in first["text"] and "+1.00 USD" in first["text"] and "reducing" in first["text"]

        # a command from another chat is ignored: nothing on the control stream, no answer
        fake_bot.command("/kill", chat_id=555)
        await asyncio.sleep(1.0)
        assert await bus.read_all(bus.streams.control) == []
        n_sent = len(fake_bot.sent)

        # from the configured chat: a Control event the executor understands, and an answer
        fake_bot.command("/pause@fake_bot grid", chat_id=CHAT, thread_id=THREAD)
        uid = fake_bot.command("/kill", chat_id=CHAT, thread_id=THREAD)
        await fake_bot.wait_sent(lambda s: any("kill *: sent" in str(m.get("text")) for m in s))
        ctrl = [d.event for d in await bus.read_all(bus.streams.control)]
        assert [(c.command, c.target) for c in ctrl] == [("pause", "grid"), ("kill", "*")]
        assert all(isinstance(c, Control) and c.source == "notifier" and "telegram" in c.reason for c in ctrl)
        assert ctrl[1].reason == "telegram /kill by alice"
        # the same update delivered again would have the same event id (the executor drops it)
        from shared.control import control_event
        assert control_event("kill", "*", "x", source="notifier", key=("telegram", uid)).id == ctrl[1].id
        # the notifier reads the control stream too: the kill is notified
        await fake_bot.wait_sent(lambda s: any("KILL switch" in str(m.get("text")) for m in s))

        # a command the control builder refuses is answered, and commands keep working after it
        fake_bot.command("/kill grid", chat_id=CHAT)
        await fake_bot.wait_sent(lambda s: any("/kill: kill halts the whole account" in str(m.get("text")) for m in s))
        assert len(await bus.read_all(bus.streams.control)) == 2

        fake_bot.command("/status", chat_id=CHAT)
        msgs = await fake_bot.wait_sent(lambda s: any("<b>Status</b>" in str(m.get("text")) for m in s))
        status = next(m["text"] for m in msgs if "<b>Status</b>" in str(m.get("text")))
        assert "paused: grid" in status and "executor reducing" in status
        fake_bot.command("/pnl", chat_id=CHAT)
        msgs = await fake_bot.wait_sent(lambda s: any("<b>PnL</b>" in str(m.get("text")) for m in s))
        assert len(fake_bot.sent) > n_sent

        # Alertmanager's webhook
        async with aiohttp.ClientSession() as http:
            body = {"version": "4", "status": "firing", "alerts": [
                {"status": "firing", "labels": {"alertname": "ServiceDown", "service": "ledger",
                                                "severity": "critical"}, "annotations": {"summary": "down"}}]}
            async with http.post(f"http://127.0.0.1:{port}/alertmanager", json=body) as r:
                assert r.status == 200
            async with http.post(f"http://127.0.0.1:{port}/alertmanager", data=b"{nope") as r:
                assert r.status == 400
            async with http.get(f"http://127.0.0.1:{port}/health") as r:
                assert (await r.json())["telegram"] is True
        await fake_bot.wait_sent(lambda s: any("FIRING</b> ServiceDown" in str(m.get("text")) for m in s))
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    assert fake_bot.token not in caplog.text
    assert all(fake_bot.token not in str(r.args) for r in caplog.records)


async def test_rate_limit_answer_is_waited_and_history_is_not_repeated(fake_bot, redis_client, namespace,
                                                                       monkeypatch):
    bus = Bus(redis_client, namespace)
    # history written before the first start: folded silently (positions), not notified
    await bus.publish(bus.streams.exec(1001), [fill(1, "buy", 0.02, 100_000.0)])
    svc = make(bus, fake_bot, monkeypatch)
    task = asyncio.create_task(svc.run(http_port=0))
    try:
        await asyncio.sleep(0.5)
        assert svc.folded == 1 and svc.engine.fifo.position("trend", "BTC") == pytest.approx(0.02)
        fake_bot.fail_next = 1  # Telegram answers 429 retry_after 1 once
        await bus.publish(bus.streams.exec(1001), [fill(2, "sell", 0.02, 100_050.0)])
        sent = await fake_bot.wait_sent(lambda s: len(s) >= 1)
        assert "Closed long" in sent[0]["text"] and "+1.00 USD" in sent[0]["text"]
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
    assert len(fake_bot.sent) == 1
    # a restart folds both fills again (delivered before) and sends nothing new
    svc2 = make(bus, fake_bot, monkeypatch)
    task = asyncio.create_task(svc2.run(http_port=0))
    try:
        await asyncio.sleep(0.8)
        assert svc2.folded == 2 and svc2.engine.realized_total["trend"] == pytest.approx(1.0)
    finally:
        svc2.stop()
        await asyncio.wait_for(task, 10)
    assert len(fake_bot.sent) == 1


def test_no_token_or_no_chat_means_log_only(monkeypatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert make_chat(NotifierConfig(chat_id=1)) is None
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    assert make_chat(NotifierConfig()) is None
    assert make_chat(NotifierConfig(chat_id=1)) is not None


async def test_a_command_redis_cannot_take_is_answered_not_sent(fake_bot, redis_client, namespace, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    import services.notifier.runner as runner

    async def down(bus, ev):
        raise RedisConnectionError("Connection refused")

    svc = make(Bus(redis_client, namespace), fake_bot, monkeypatch)
    monkeypatch.setattr(runner, "publish_control", down)
    reply = await svc.handle_command("/kill", CHAT, None, 1, "alice")
    assert reply is not None and "NOT sent" in reply and "Redis" in reply
    assert svc.health()["status"] == "degraded"
