"""Soak: the whole paper stack on a looped recording for at least 24 simulated hours, RSS sampled.

Prints figures, never fails on them (target: growth < 5 MB per simulated hour after warm-up, for
every service; docs/performance.md).

The bundled BTC+ETH hour (``data/recordings/lighter-2025-09-15-btc-eth.jsonl.gz``, 1,751 events
over 3,714 s) is looped ``ceil(--sim-hours / 1.03)`` times with shifted timestamps (each loop 1 s
after the previous one ends; ids re-derived per loop) into one recording, and
``lighter_stack.demo`` runs every service of ``make demo`` as its own process on it
(venue-sim, ledger, executor, collector, trend, renko, grid, maker, hedger, recorder, notifier)
on a private Redis (``EmbeddedRedis``), paced at ``--speed`` (default 600: a recorded hour in
6 wall seconds plus the gaps, each cut to ``--max-gap-s`` recorded seconds). Every
``--sample-s`` wall seconds the RSS of each process (``VmRSS``) is sampled with the replay's
progress (venue-sim's ``recorded_time_ns``: simulated hours since the first event).

Growth per simulated hour is the least-squares slope of RSS against simulated hours over the
samples after ``--warmup-hours`` (default 2), per service; ``rss_growth_mb_per_hour`` is the
largest. The demo's own checks (ledger fills = venue fills, attribution) run at the end and are
reported (``demo_ok``). Last line: one JSON object.
Run: ``python bench/soak.py [--sim-hours 24] [--speed 600]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.stack import BUNDLED_RECORDING, get_json, machine, print_figures, redis_version, rss_mb  # noqa: E402

from lighter_stack.demo import Demo, DemoError, DemoOptions  # noqa: E402
from shared.events import derive_id  # noqa: E402
from shared.recording import read_recording, write_recording  # noqa: E402
from shared.redis_util import EmbeddedRedis  # noqa: E402

TARGET_MB_PER_HOUR = 5.0


def looped_recording(dst: Path, sim_hours: float) -> tuple[int, int, float]:
    """Write the bundled recording looped to cover ``sim_hours``; returns (events, first
    ts_event ns, simulated hours covered)."""
    header, events = read_recording(BUNDLED_RECORDING)
    base = list(events)
    span = base[-1].ts_event - base[0].ts_event + 1_000_000_000
    loops = max(1, math.ceil(sim_hours * 3600e9 / span))
    out = [msgspec.structs.replace(ev, ts_event=ev.ts_event + k * span, id=derive_id(ev.id, "loop", k))
           for k in range(loops) for ev in base]
    header.notes = (header.notes + f" Looped {loops} times by bench/soak.py.").strip()
    write_recording(dst, header, out)
    return len(out), base[0].ts_event, loops * span / 3600e9


def growth(samples: list[tuple[float, float, dict[str, float | None]]], warmup_h: float) -> dict[str, dict[str, Any]]:
    """Per service: RSS at the first and last sample after the warm-up and the least-squares
    slope (MiB per simulated hour) over those samples."""
    after = [s for s in samples if s[1] >= warmup_h]
    out: dict[str, dict[str, Any]] = {}
    names = sorted({n for _, _, rss in after for n in rss})
    for name in names:
        pts = [(h, rss[name]) for _, h, rss in after if rss.get(name) is not None]
        if len(pts) < 3:
            out[name] = {"samples": len(pts), "mb_per_hour": None}
            continue
        hs, mbs = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
        slope = float(np.polyfit(hs, mbs, 1)[0]) if np.ptp(hs) > 0 else None
        out[name] = {"samples": len(pts), "rss_start_mb": round(mbs[0], 1), "rss_end_mb": round(mbs[-1], 1),
                     "rss_max_mb": round(float(mbs.max()), 1),
                     "mb_per_hour": round(slope, 3) if slope is not None else None}
    return out


async def run(args: argparse.Namespace, workdir: Path, recording: Path, first_ts: int
              ) -> tuple[dict[str, Any] | None, str | None, list, float]:
    """Run the demo on ``recording`` while sampling; returns (summary or None, error, samples,
    replay wall seconds)."""
    demo = Demo(DemoOptions(recording=recording, speed=args.speed, max_gap_s=args.max_gap_s,
                            workdir=workdir / "demo", timeout_s=args.timeout))
    samples: list[tuple[float, float, dict[str, float | None]]] = []
    times: dict[str, float] = {}

    async def sampler() -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                await asyncio.sleep(args.sample_s)
                venue = next((p for p in demo.procs if p.name == "venue-sim"), None)
                if venue is None:
                    continue
                try:
                    st = await get_json(http, f"http://127.0.0.1:{venue.port}/sim/status")
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    continue
                if st.get("state") == "waiting":
                    continue
                times.setdefault("start", time.monotonic())
                sim_h = (int(st.get("recorded_time_ns") or first_ts) - first_ts) / 3600e9
                samples.append((time.monotonic(), sim_h, {p.name: rss_mb(p.popen.pid) for p in demo.procs}))
                if st.get("state") == "finished":
                    times["end"] = time.monotonic()
                    return

    task = asyncio.create_task(sampler())
    summary, error = None, None
    try:
        summary = await demo.run()
    except DemoError as exc:
        error = str(exc).splitlines()[0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    wall = times.get("end", time.monotonic()) - times.get("start", time.monotonic())
    return summary, error, samples, wall


def main() -> None:
    ap = argparse.ArgumentParser(description="soak: looped recording, every service's RSS")
    ap.add_argument("--sim-hours", type=float, default=24.0, help="simulated hours to replay (at least)")
    ap.add_argument("--speed", type=float, default=600.0, help="recorded seconds per wall second (0: unpaced)")
    ap.add_argument("--max-gap-s", type=float, default=2.0, help="recorded gaps longer than this are cut to it")
    ap.add_argument("--warmup-hours", type=float, default=2.0, help="simulated hours left out of the slope")
    ap.add_argument("--sample-s", type=float, default=2.0, help="wall seconds between RSS samples")
    ap.add_argument("--timeout", type=float, default=3600.0, help="give up after this many wall seconds")
    args = ap.parse_args()
    load_before = machine()["loadavg"]
    workdir = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    recording = workdir / "looped.jsonl.gz"
    n_events, first_ts, covered_h = looped_recording(recording, args.sim_hours)
    with EmbeddedRedis() as server:
        os.environ["REDIS_URL"] = server.url  # the demo uses it (namespace paper-demo-<id>)
        summary, error, samples, wall = asyncio.run(run(args, workdir, recording, first_ts))
        rv = redis_version(server.url)
    per = growth(samples, args.warmup_hours)
    slopes = [v["mb_per_hour"] for v in per.values() if v.get("mb_per_hour") is not None]
    worst = max(per, key=lambda k: per[k].get("mb_per_hour") or float("-inf")) if slopes else None
    sim_done = samples[-1][1] if samples else 0.0
    figures = {
        "rss_growth_mb_per_hour": max(slopes) if slopes else None,
        "worst_service": worst,
        "target_met": bool(slopes) and max(slopes) < TARGET_MB_PER_HOUR and error is None,
        "sim_hours": round(sim_done, 2), "sim_hours_requested": args.sim_hours, "recording_hours": round(covered_h, 2),
        "events": n_events, "replay_wall_s": round(wall, 1), "speed": args.speed, "warmup_hours": args.warmup_hours,
        "samples": len(samples), "demo_ok": error is None and bool(summary) and bool(summary.get("fills_attributed")),
        "demo_error": error,
        "demo": {k: summary.get(k) for k in ("orders", "fills", "ledger_fills", "venue_fills", "rate_limited",
                                             "fills_attributed", "quantities_match")} if summary else None,
        "services": per,
        "machine": {**machine(), "loadavg_before": load_before, "redis": rv},
    }
    print_figures(figures)


if __name__ == "__main__":
    main()
