"""End-to-end: the notifier in the demo (every service as its own OS process) talking to the fake
Bot API (tests/support/fake_telegram.py, served from a thread of this test): the strategies'
fills reach the group's topic, and ``/kill`` sent in the chat halts the executor, which the chat
is told. The notifier's section comes from a profile layered through ``LIGHTER_STACK_PROFILES``
(the demo passes no ``LS_`` variable through) and the token from ``TELEGRAM_BOT_TOKEN``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml
from fake_telegram import FakeBotApi

REPO = Path(__file__).resolve().parents[2]
CHAT = -100999
THREAD = 3


class ThreadedFake:
    """The fake Bot API on its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.fake = FakeBotApi()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self.loop).result(10)

    def command(self, text: str) -> None:
        self.loop.call_soon_threadsafe(self.fake.command, text, CHAT, THREAD)

    def texts(self) -> list[str]:
        return list(self.fake.texts())

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.mark.e2e
def test_notifier_delivers_fills_and_the_kill_during_the_demo(tmp_path, redis_url):
    tg = ThreadedFake()
    profile = tmp_path / "notifier.yaml"
    profile.write_text(yaml.safe_dump({"services": {"notifier": {
        "chat_id": CHAT, "thread_id": THREAD, "api_base_url": tg.fake.base_url, "min_interval_s": 0.5,
        "batch_window_s": 0.5, "poll_timeout_s": 1}}}))
    env = dict(os.environ, REDIS_URL=redis_url, LIGHTER_STACK_DATA=str(tmp_path), LIGHTER_STACK_PROFILES=str(profile),
               TELEGRAM_BOT_TOKEN=tg.fake.token)
    cmd = [sys.executable, "-m", "lighter_stack.cli", "demo", "--minutes", "40", "--speed", "150", "--timeout", "240"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and proc.poll() is None:
            texts = tg.texts()
            if not killed and any("Opened" in t for t in texts):
                tg.command("/kill")
                killed = True
            if killed and any("Executor HALTED" in t for t in texts):
                break
            time.sleep(0.2)
        # the demo goes on to its end (halted: it trades no more; its own checks may then fail)
        out, err = proc.communicate(timeout=420)
        texts = " | ".join(tg.texts())
    finally:
        if proc.poll() is None:
            proc.kill()
            out, err = proc.communicate(timeout=60)
        tg.close()
        namespaces = set(re.findall(r"paper-demo-[0-9a-z-]+", out or ""))
        client = redis.Redis.from_url(redis_url)
        for ns in namespaces:  # the run's own namespace on the shared Redis: drop it
            keys = list(client.scan_iter(match=f"{ns}:*"))
            if keys:
                client.delete(*keys)
        client.close()
    assert killed, f"no Opened message reached the fake Bot API; sent: {texts[:2000]}\n{err[-3000:]}"
    assert "Opened" in texts and "kill *: sent to the executor" in texts
    assert "KILL switch" in texts and "Executor HALTED" in texts and "telegram /kill" in texts
    assert all(m.get("chat_id") == CHAT and m.get("message_thread_id") == THREAD for m in tg.fake.sent)
    # the token is in no log of the run (the demo's workdir, named in its summary line)
    summary = json.loads([ln for ln in out.splitlines() if ln.strip()][-1])
    logs = list(Path(summary["workdir"]).rglob("*.log"))
    assert any(p.name.startswith("notifier") for p in logs), [p.name for p in logs]
    assert not [p for p in logs if tg.fake.token in p.read_text(errors="replace")]
