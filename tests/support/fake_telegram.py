"""A fake Telegram Bot API server (aiohttp) for the notifier's tests: ``POST /bot<token>/<method>``
with JSON or form bodies, as python-telegram-bot sends them.

It records every ``sendMessage`` (``sent``: the parameters, values JSON-decoded where they are
JSON) and serves ``getUpdates`` from the updates a test queues with :meth:`FakeBotApi.command`
(long polling: it waits up to the request's ``timeout`` for one). ``getMe``, ``deleteWebhook``,
``close`` and ``logOut`` answer as Telegram does; other methods answer ``ok`` with ``true``.
Only the configured token is accepted (401 otherwise). Import as ``from fake_telegram import
FakeBotApi``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from shared.redis_util import free_port


class FakeBotApi:
    """The fake server. ``base_url`` (after :meth:`start`) is what the notifier's
    ``api_base_url`` takes."""

    def __init__(self, token: str = "123456:TEST-token-abcdef") -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []
        self.updates: list[dict[str, Any]] = []
        self._update_id = 1000
        self._msg_id = 0
        self._new = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.fail_next = 0  # answer this many sendMessage calls with 429 retry_after 1

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FakeBotApi:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def command(self, text: str, chat_id: int | str, thread_id: int | None = None, user: str = "alice") -> int:
        """Queue a message update ``text`` from ``chat_id``; returns its update id."""
        self._update_id += 1
        msg: dict[str, Any] = {"message_id": self._update_id, "date": int(time.time()), "text": text,
                               "chat": {"id": chat_id, "type": "supergroup", "title": "ops"},
                               "from": {"id": 7, "is_bot": False, "first_name": user, "username": user}}
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        self.updates.append({"update_id": self._update_id, "message": msg})
        self._new.set()
        return self._update_id

    def texts(self) -> list[str]:
        return [str(m.get("text", "")) for m in self.sent]

    async def wait_sent(self, pred, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until ``pred(sent)`` holds; returns ``sent`` (AssertionError at the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self.sent):
                return self.sent
            await asyncio.sleep(0.05)
        raise AssertionError(f"fake Bot API: condition not met; sent: {self.texts()}")

    @staticmethod
    async def _params(req: web.Request) -> dict[str, Any]:
        if req.content_type == "application/json":
            body = await req.json()
            return dict(body or {})
        form = await req.post()
        out: dict[str, Any] = {}
        for k, v in form.items():
            if isinstance(v, str):
                try:
                    out[k] = json.loads(v)
                except ValueError:
                    out[k] = v
        return out

    async def _handle(self, req: web.Request) -> web.Response:
        if req.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = req.match_info["method"]
        self.calls.append(method)
        p = await self._params(req)
        if method == "getMe":
            return _ok({"id": 123456, "is_bot": True, "first_name": "fake", "username": "fake_bot"})
        if method == "sendMessage":
            if self.fail_next > 0:
                self.fail_next -= 1
                return web.json_response({"ok": False, "error_code": 429, "description": "Too Many Requests",
                                          "parameters": {"retry_after": 1}}, status=429)
            self.sent.append(p)
            self._msg_id += 1
            chat_id = p.get("chat_id")
            msg = {"message_id": self._msg_id, "date": int(time.time()), "text": p.get("text", ""),
                   "chat": {"id": chat_id if isinstance(chat_id, int) else 0, "type": "supergroup"}}
            return _ok(msg)
        if method == "getUpdates":
            offset = int(p.get("offset") or 0)
            timeout = float(p.get("timeout") or 0)
            deadline = time.monotonic() + timeout
            while True:
                got = [u for u in self.updates if u["update_id"] >= offset]
                if got or time.monotonic() >= deadline:
                    return _ok(got)
                self._new.clear()
                try:
                    await asyncio.wait_for(self._new.wait(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    pass
        return _ok(True)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})
