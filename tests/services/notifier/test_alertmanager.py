"""Prometheus alerts reach Telegram through Alertmanager: the shipped configuration is valid
(``amtool check-config``) and routes to the notifier's webhook on its registry port, Prometheus
sends its alerts to Alertmanager, and a real Alertmanager (Debian's ``prometheus-alertmanager``)
started on a free port delivers an alert posted to its API to the notifier, which sends it to
the fake Bot API."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
import yaml
from fake_telegram import FakeBotApi

from lighter_stack.registry import SERVICES
from services.notifier.config import NotifierConfig
from services.notifier.runner import NotifierService, make_chat
from shared.bus import Bus
from shared.redis_util import free_port

ROOT = Path(__file__).resolve().parents[3]
AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")


def test_shipped_config_routes_every_alert_to_the_notifier_webhook() -> None:
    am = yaml.safe_load(AM_CONFIG.read_text())
    receiver = am["route"]["receiver"]
    (rc,) = [r for r in am["receivers"] if r["name"] == receiver]
    assert rc["webhook_configs"][0]["url"] == f"http://notifier:{SERVICES['notifier'].port}/alertmanager"
    assert rc["webhook_configs"][0]["send_resolved"] is True
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for a in prom["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert targets == ["alertmanager:9093"]


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (Debian package prometheus-alertmanager)")
def test_amtool_checks_the_shipped_config() -> None:
    res = subprocess.run([AMTOOL, "check-config", str(AM_CONFIG)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.skipif(ALERTMANAGER is None, reason="prometheus-alertmanager not installed (make sysdeps)")
async def test_an_alert_posted_to_alertmanager_reaches_telegram(tmp_path, redis_client, namespace, monkeypatch):
    fake = await FakeBotApi().start()
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    ncfg = NotifierConfig(chat_id=-100, thread_id=5, api_base_url=fake.base_url, min_interval_s=0.2,
                          batch_window_s=0.2, poll_timeout_s=1, block_ms=50, commands=False)
    svc = NotifierService(Bus(redis_client, namespace), 1001, ncfg, make_chat(ncfg))
    notifier_port = free_port()
    task = asyncio.create_task(svc.run(http_port=notifier_port))
    # the shipped config with the webhook pointed at this notifier and short waits
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    cfg["route"].update(group_wait="1s", group_interval="1s")
    cfg["receivers"][0]["webhook_configs"][0]["url"] = f"http://127.0.0.1:{notifier_port}/alertmanager"
    (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg))
    am_port = free_port()
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                             "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        alert = [{"labels": {"alertname": "ServiceDown", "service": "executor", "severity": "critical"},
                  "annotations": {"summary": "executor /metrics not answering for 1 min"}}]
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    async with http.post(f"http://127.0.0.1:{am_port}/api/v2/alerts", json=alert) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline and proc.poll() is None, "alertmanager did not start"
                await asyncio.sleep(0.2)
        sent = await fake.wait_sent(lambda s: any("ServiceDown" in str(m.get("text")) for m in s), timeout=20)
        msg = next(m for m in sent if "ServiceDown" in str(m.get("text")))
        assert msg["text"] == ("<b>FIRING</b> ServiceDown [critical] service=executor: "
                               "executor /metrics not answering for 1 min")
        assert msg["chat_id"] == -100 and msg["message_thread_id"] == 5
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        svc.stop()
        await asyncio.wait_for(task, 10)
        await fake.stop()
