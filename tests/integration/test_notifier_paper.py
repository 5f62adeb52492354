"""The notifier during a paper run: venue-sim, the executor and the notifier on a real Redis, the
notifier talking to the fake Bot API. A strategy's target trades on venue-sim: the fill reaches
the group's topic as an *Opened long* message; ``/kill`` sent in the chat becomes a ``Control``
the executor obeys (it halts), and the kill and the halted state reach the chat too."""

from __future__ import annotations

import asyncio
import time

from fake_telegram import FakeBotApi

from services.notifier.config import NotifierConfig
from services.notifier.runner import NotifierService, make_chat
from shared.events import Bbo, Fill, RiskState, TargetPosition

CHAT = -100777
THREAD = 9


async def test_fill_and_kill_reach_telegram_during_a_paper_run(venue_executor, monkeypatch):
    t0 = time.time_ns()
    bbos = [Bbo(id=f"r{i}", ts_event=t0 + i * 1_000_000_000, source="rec", market="BTC", bid_px=115000.0,
                bid_sz=1.0, ask_px=115001.0, ask_sz=1.0) for i in range(120)]
    h = await venue_executor(bbos, ["BTC"])
    fake = await FakeBotApi().start()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    ncfg = NotifierConfig(chat_id=CHAT, thread_id=THREAD, api_base_url=fake.base_url, min_interval_s=0.2,
                          batch_window_s=0.2, poll_timeout_s=1, block_ms=50)
    svc = NotifierService(h.bus, h.cfg.account_index, ncfg, make_chat(ncfg))
    task = asyncio.create_task(svc.run(http_port=0))
    try:
        await asyncio.sleep(0.5)
        assert svc.engine.risk_state == "running"  # folded from the exec history, not notified
        ts = time.time_ns()
        await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id="b1", ts_event=ts, source="test", market="BTC",
                                                            bid_px=115000.0, bid_sz=1.0, ask_px=115001.0,
                                                            ask_sz=1.0)])
        await asyncio.sleep(0.5)
        await h.bus.publish(h.bus.streams.intent(h.cfg.account_index), [
            TargetPosition(id="t1", ts_event=ts + 1, source="trend", strategy="trend", market="BTC", target=0.002,
                           reason="signal")])
        await h.wait_for(lambda evs: any(isinstance(e, Fill) for e in evs))
        sent = await fake.wait_sent(lambda s: any("Opened long" in str(m.get("text")) for m in s), timeout=15)
        opened = next(m for m in sent if "Opened long" in str(m.get("text")))
        assert "trend BTC: buy 0.002" in opened["text"] and "(signal)" in opened["text"]
        assert opened["chat_id"] == CHAT and opened["message_thread_id"] == THREAD

        fake.command("/kill", chat_id=CHAT, thread_id=THREAD)
        await h.wait_for(lambda evs: any(isinstance(e, RiskState) and e.state == "halted"
                                         and "telegram /kill" in e.reason for e in evs))
        await fake.wait_sent(lambda s: any("Executor HALTED" in str(m.get("text")) for m in s), timeout=15)
        texts = " | ".join(fake.texts())
        assert "KILL switch" in texts and "kill *: sent to the executor" in texts
        assert fake.token not in texts
    finally:
        svc.stop()
        await asyncio.wait_for(task, 10)
        await fake.stop()
