#!/usr/bin/env python3
"""``make compose-smoke``: the whole docker compose stack in paper mode, end to end.

Builds the image, brings up Redis (password, AOF), PostgreSQL (the ledger), every service,
Alertmanager and Prometheus (Grafana too when its image is present locally, ``--grafana``),
waits for every container to be healthy, and while venue-sim replays the bundled recording:

1. adds a second trend instance on another market (``strategy-trend-eth`` of
   ``deploy/compose.smoke.yml``: ETH, attribution and consumer group ``trend-eth``);
2. ``restart strategy-trend`` once it has a fill: it must come back healthy and restore at least
   the fills the ledger had attributed to it;
3. ``kill executor`` then ``up executor``: healthy again, and no create order accepted twice by
   the venue (venue-sim's audit log: one per client order index);
4. Prometheus: every scrape target up.

After the replay, the strategies then the executor stop (as the demo winds down) and the ledger
in PostgreSQL must hold exactly venue-sim's fills (distinct venue trade ids and size per market),
every one attributed to a strategy. Prints one JSON line (``services_healthy``, ``ledger_fills``,
``venue_fills``, ``restart_ok``, ``second_instance_ok``, ``executor_restart_ok``,
``prometheus_targets_up``, ``ok``) and exits 0 when ``ok``. Always ``down -v`` at the end
(``--keep`` leaves the stack up).

Images: when the upstream images are not present and ``deploy/local-images.env`` exists (written
by ``deploy/local-images.sh``), its stand-ins are used. Standard library only; runs with the
host's python3 (not in CI). Ports are free ones on 127.0.0.1; the project name is
``lsmoke`` so a running ``docker compose up`` of the repository is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "lsmoke"
FILES = ["-f", str(ROOT / "docker-compose.yml"), "-f", str(ROOT / "deploy" / "compose.smoke.yml")]
UPSTREAM = {"BASE_IMAGE": "python:3.11-slim", "REDIS_IMAGE": "redis:7-alpine",
            "POSTGRES_IMAGE": "postgres:16-alpine", "PROMETHEUS_IMAGE": "prom/prometheus:v2.53.0",
            "ALERTMANAGER_IMAGE": "prom/alertmanager:v0.27.0"}
GRAFANA_IMAGE = "grafana/grafana:11.1.0"
STRATEGIES = ["strategy-trend", "strategy-renko", "strategy-grid", "maker", "hedger", "copytrade"]
RESTORED_RE = re.compile(r"strategy trend: restored (\d+) fills")


def log(msg: str) -> None:
    """Progress on stderr (stdout carries only the JSON line)."""
    print(f"[compose-smoke {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def compose_cmd() -> list[str]:
    """``docker compose`` when the plugin is there, else ``docker-compose`` (v1)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                 check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    sys.exit("compose-smoke: neither `docker compose` nor `docker-compose` found")


def image_present(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True, check=False).returncode == 0


class Stack:
    """The compose project under test: runs compose commands with the smoke's environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.base = [*compose_cmd(), "-p", PROJECT, "--project-directory", str(ROOT), *FILES]

    def run(self, *args: str, check: bool = True, capture: bool = False, timeout: float = 1800) -> str:
        res = subprocess.run([*self.base, *args], env=self.env, cwd=ROOT, check=False, timeout=timeout,
                             stdout=subprocess.PIPE if capture else sys.stderr,
                             stderr=subprocess.PIPE if capture else sys.stderr, text=True)
        if check and res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {res.returncode} {res.stderr or ''}"[-2000:])
        return res.stdout or ""

    def container(self, service: str) -> str:
        return self.run("ps", "-q", service, capture=True).strip()

    def state(self, service: str) -> str:
        """``healthy``/``starting``/``unhealthy`` (health check), else ``running``/``exited``/..."""
        cid = self.container(service)
        if not cid:
            return "absent"
        res = subprocess.run(["docker", "inspect", "-f", "{{json .State}}", cid], capture_output=True,
                             text=True, check=False)
        if res.returncode != 0:
            return "absent"
        st = json.loads(res.stdout)
        return (st.get("Health") or {}).get("Status") or st.get("Status", "?")

    def wait_healthy(self, services: list[str], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = {s: self.state(s) for s in services}
            if all(v in ("healthy", "running") for v in states.values()):
                return True
            time.sleep(3)
        log(f"not healthy in {timeout:.0f}s: { {k: v for k, v in states.items() if v not in ('healthy', 'running')} }")
        return False

    def psql(self, sql: str) -> list[list[str]]:
        out = self.run("exec", "-T", "postgres", "psql", "-U", "lighter", "-d", "ledger", "-At", "-F", "\t",
                       "-c", sql, capture=True, check=False)
        return [line.split("\t") for line in out.splitlines() if line.strip()]


def http_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (loopback)
        return json.loads(r.read())


class Smoke:
    """The checks, in order; :meth:`run` returns the result dict."""

    def __init__(self, stack: Stack, ports: dict[str, int], health_timeout: float, replay_timeout: float) -> None:
        self.stack, self.ports = stack, ports
        self.health_timeout, self.replay_timeout = health_timeout, replay_timeout
        self.venue = f"http://127.0.0.1:{ports['VENUE_SIM_PORT']}"
        self.result: dict[str, Any] = {"services_healthy": False, "ledger_fills": 0, "venue_fills": 0,
                                       "restart_ok": False, "second_instance_ok": False,
                                       "executor_restart_ok": False, "prometheus_targets_up": False}
        self.details: dict[str, Any] = {}

    # ------------------------------------------------------------------ ledger / venue

    def ledger_by_strategy(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.stack.psql("SELECT strategy, count(*) FROM fills GROUP BY strategy")
                if len(r) == 2}

    def ledger_venue(self) -> tuple[int, dict[str, float]]:
        n = self.stack.psql("SELECT count(DISTINCT venue_trade_id) FROM fills WHERE venue_trade_id <> ''")
        sizes = self.stack.psql("SELECT market, sum(size) FROM fills WHERE venue_trade_id <> '' GROUP BY market")
        return (int(n[0][0]) if n else 0), {r[0]: float(r[1]) for r in sizes if len(r) == 2}

    def venue_fills(self) -> tuple[int, dict[str, float]]:
        fills = http_json(f"{self.venue}/sim/fills")
        sizes: dict[str, float] = {}
        for f in fills:
            m = str(f.get("symbol") or f.get("market"))
            sizes[m] = sizes.get(m, 0.0) + float(f["size"])
        return len(fills), sizes

    def replay_progress(self) -> tuple[str, float]:
        st = http_json(f"{self.venue}/sim/status")
        return str(st.get("state")), st.get("events_replayed", 0) / max(st.get("total_events", 1), 1)

    def wait_progress(self, frac: float, what: str) -> None:
        deadline = time.monotonic() + self.replay_timeout
        while time.monotonic() < deadline:
            state, done = self.replay_progress()
            if state == "finished" or done >= frac:
                return
            time.sleep(2)
        log(f"replay did not reach {frac:.0%} for {what} in time")

    # ------------------------------------------------------------------ steps

    def up(self, services: list[str]) -> None:
        infra = [s for s in ("redis", "postgres", "alertmanager", "prometheus", "venue-sim") if s in services]
        log("compose up: " + " ".join(infra) + ", then the rest")
        self.stack.run("up", "-d", *infra)
        self.stack.run("up", "-d", *services)
        self.result["services_healthy"] = self.stack.wait_healthy(services, self.health_timeout)

    def second_instance(self) -> None:
        log("a second trend instance joins: strategy-trend-eth (ETH, attribution trend-eth)")
        self.stack.run("up", "-d", "--no-deps", "strategy-trend-eth")
        self.details["second_instance_healthy"] = self.stack.wait_healthy(["strategy-trend-eth"], self.health_timeout)

    def restart_trend(self) -> None:
        deadline = time.monotonic() + self.replay_timeout
        while time.monotonic() < deadline:  # restart once it holds something to restore
            if self.ledger_by_strategy().get("trend", 0) > 0 or self.replay_progress()[1] >= 0.5:
                break
            time.sleep(3)
        before = self.ledger_by_strategy().get("trend", 0)
        log(f"compose restart strategy-trend (ledger: {before} trend fills)")
        self.stack.run("restart", "strategy-trend")
        healthy = self.stack.wait_healthy(["strategy-trend"], self.health_timeout)
        restored = None
        for _ in range(20):
            found = RESTORED_RE.findall(self.stack.run("logs", "--no-color", "strategy-trend", capture=True))
            if len(found) >= 2:  # the first start and the restart
                restored = int(found[-1])
                break
            time.sleep(1)
        self.details["trend_fills_before_restart"], self.details["trend_fills_restored"] = before, restored
        self.result["restart_ok"] = bool(healthy and restored is not None and restored >= before)

    def kill_executor(self) -> None:
        self.wait_progress(0.6, "the executor kill")
        log("compose kill executor, then up executor")
        self.stack.run("kill", "executor")
        time.sleep(3)
        self.stack.run("up", "-d", "--no-deps", "executor")
        self.details["executor_healthy_again"] = self.stack.wait_healthy(["executor"], self.health_timeout)

    def duplicate_orders(self) -> int | None:
        out = self.stack.run("exec", "-T", "venue-sim", "cat", "/app/var/audit.jsonl", capture=True, check=False)
        if not out.strip():
            return None
        cois: dict[tuple[int, int], int] = {}
        for line in out.splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("k") == "order" and rec.get("coi"):
                key = (rec["acct"], rec["coi"])
                cois[key] = cois.get(key, 0) + 1
        self.details["orders_accepted"] = sum(cois.values())
        return sum(n - 1 for n in cois.values() if n > 1)

    def prometheus(self) -> None:
        url = f"http://127.0.0.1:{self.ports['PROMETHEUS_PORT']}/api/v1/targets"
        deadline = time.monotonic() + 60
        down: list[str] = ["?"]
        while time.monotonic() < deadline:
            try:
                targets = http_json(url)["data"]["activeTargets"]
            except (OSError, ValueError, KeyError):
                targets = []
            down = [t["labels"].get("service", t.get("scrapeUrl", "?")) for t in targets if t.get("health") != "up"]
            if targets and not down:
                self.details["prometheus_targets"] = len(targets)
                self.result["prometheus_targets_up"] = True
                return
            time.sleep(3)
        self.details["prometheus_targets_down"] = down

    def wind_down_and_compare(self) -> None:
        deadline = time.monotonic() + self.replay_timeout
        while time.monotonic() < deadline and self.replay_progress()[0] != "finished":
            time.sleep(3)
        log("replay finished; stopping the strategies, then the executor")
        self.stack.run("stop", *STRATEGIES, "strategy-trend-eth")
        time.sleep(5)
        self.stack.run("stop", "executor")
        venue_n, venue_sizes, ledger_n, ledger_sizes = 0, {}, -1, {}
        for _ in range(40):  # the ledger catches up
            venue_n, venue_sizes = self.venue_fills()
            ledger_n, ledger_sizes = self.ledger_venue()
            if ledger_n == venue_n and _sizes_equal(venue_sizes, ledger_sizes):
                break
            time.sleep(3)
        by_strategy = self.ledger_by_strategy()
        self.result["ledger_fills"], self.result["venue_fills"] = ledger_n, venue_n
        self.details["strategy_fills"] = dict(sorted(by_strategy.items()))
        self.details["quantities_match"] = _sizes_equal(venue_sizes, ledger_sizes)
        self.details["fills_attributed"] = "" not in by_strategy and sum(by_strategy.values()) >= ledger_n
        self.result["second_instance_ok"] = bool(self.details.get("second_instance_healthy")
                                                 and by_strategy.get("trend-eth", 0) > 0)
        dups = self.duplicate_orders()
        self.details["duplicate_orders"] = dups
        self.result["executor_restart_ok"] = bool(self.details.get("executor_healthy_again") and dups == 0)

    def run(self, services: list[str]) -> dict[str, Any]:
        self.up(services)
        if self.result["services_healthy"]:
            log("every container healthy: POST /sim/start (the replay begins)")
            req = urllib.request.Request(f"{self.venue}/sim/start", method="POST")
            with urllib.request.urlopen(req, timeout=10):  # noqa: S310 (loopback)
                pass
            self.second_instance()
            self.restart_trend()
            self.kill_executor()
            self.prometheus()
            self.wind_down_and_compare()
        checks = [self.result[k] for k in ("services_healthy", "restart_ok", "second_instance_ok",
                                           "executor_restart_ok", "prometheus_targets_up")]
        fills_ok = (self.result["venue_fills"] > 0 and self.result["ledger_fills"] == self.result["venue_fills"]
                    and self.details.get("quantities_match") and self.details.get("fills_attributed"))
        self.result["ok"] = bool(all(checks) and fills_ok)
        return self.result


def _sizes_equal(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-9 for k in a)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speed", type=float, default=3.0,
                    help="venue-sim replay speed (the 62 min recording; gaps over 5 s are shortened)")
    ap.add_argument("--no-build", action="store_true", help="use the existing lighter-stack image")
    ap.add_argument("--grafana", action="store_true", help="also start Grafana (needs its image)")
    ap.add_argument("--keep", action="store_true", help="leave the stack up (default: down -v)")
    ap.add_argument("--health-timeout", type=float, default=600.0)
    ap.add_argument("--replay-timeout", type=float, default=1200.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up (finally: down -v)

    ports = {k: free_port() for k in ("VENUE_SIM_PORT", "COPYTRADE_PORT", "PROMETHEUS_PORT",
                                       "ALERTMANAGER_PORT", "GRAFANA_PORT")}
    env = {**os.environ, **{k: str(v) for k, v in ports.items()},
           "BIND_ADDR": "127.0.0.1", "VENUE_SPEED": f"{args.speed:g}", "LS_MODE": "paper",
           "LS_NAMESPACE": "paper", "CONFIG_FILE": "paper.yaml",
           "REDIS_PASSWORD": secrets.token_hex(12), "POSTGRES_PASSWORD": secrets.token_hex(12),
           "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(12),
           # creating a container copies the whole image on storage drivers like vfs: give the
           # engine time (docker-compose v1 gives up after 60 s by default)
           "COMPOSE_HTTP_TIMEOUT": os.environ.get("COMPOSE_HTTP_TIMEOUT", "900")}
    local_env = ROOT / "deploy" / "local-images.env"
    if not all(image_present(img) for img in UPSTREAM.values()) and local_env.exists():
        for line in local_env.read_text().splitlines():
            k, sep, v = line.partition("=")
            if sep and not k.startswith("#") and not image_present(UPSTREAM.get(k.strip(), "-")):
                env.setdefault(k.strip(), v.strip())
        log("images: " + ", ".join(f"{k}={env.get(k, v)}" for k, v in UPSTREAM.items()))
    stack = Stack(env)
    services = [s for s in stack.run("config", "--services", capture=True).split()
                if s != "strategy-trend-eth" and (s != "grafana" or args.grafana)]
    smoke = Smoke(stack, ports, args.health_timeout, args.replay_timeout)
    started = time.monotonic()
    try:
        stack.run("down", "-v", "--remove-orphans", check=False)
        if not args.no_build:
            log("building the image (BASE_IMAGE=" + env.get("BASE_IMAGE", UPSTREAM["BASE_IMAGE"]) + ")")
            stack.run("build", "venue-sim")
        result = smoke.run(services)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        log(f"failed: {exc}")
        smoke.result["ok"] = False
        smoke.details["error"] = str(exc)[:500]
        result = smoke.result
    finally:
        if not args.keep:
            for svc in ("strategy-trend", "executor", "venue-sim"):
                log(f"{svc} log tail:\n" + "\n".join(
                    stack.run("logs", "--no-color", "--tail", "5", svc, capture=True, check=False).splitlines()[-5:]))
            stack.run("down", "-v", "--remove-orphans", check=False)
    log("details: " + json.dumps({**smoke.details, "seconds": round(time.monotonic() - started)}))
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
