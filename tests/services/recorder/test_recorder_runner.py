"""The recorder against a real Redis: archives closed hours as it reads, resumes after a restart
from the archive's end without duplicates, writes what is buffered at stop, reports how far behind
it is and counts entries trimmed before it read them; another namespace's archive stops it."""

from __future__ import annotations

import asyncio
import time

import pyarrow.parquet as pq
from prometheus_client import REGISTRY

from services.recorder.config import RecorderConfig
from services.recorder.runner import Recorder, main
from shared.archive import count_rows, iter_rows, last_entry_id, write_meta
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import Control


def ctl(i: int) -> Control:
    return Control(id=f"c{i}", ts_event=i, command="pause", target="grid")


def rcfg(out) -> RecorderConfig:
    return RecorderConfig(out=str(out), http_port=0, block_ms=20, discover_s=0.05, flush_s=3600)


async def test_records_resumes_without_duplicates_and_flushes_at_stop(redis_client, namespace, tmp_path, run_until):
    cfg = StackConfig(namespace=namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.control, [ctl(i) for i in range(3)])
    await bus.publish(bus.streams.intent(1001), [ctl(9)])
    write_meta(tmp_path, namespace)
    # a clock an hour ahead: every hour read is closed, rows are written as they are read
    rec = Recorder(cfg, rcfg(tmp_path), redis_client, clock=lambda: time.time() + 3600)
    stop = asyncio.Event()
    await run_until(rec.run(stop), stop.set, lambda: rec.written >= 4)
    assert rec.written == 4 and count_rows(tmp_path) == 4
    assert REGISTRY.get_sample_value("lighter_stack_recorder_entries_total",
                                     {"stream": bus.streams.control}) >= 3

    # restart on the real clock: the new entries' hour is open, so they are written only at stop
    await bus.publish(bus.streams.control, [ctl(3), ctl(4)])
    rec2 = Recorder(cfg, rcfg(tmp_path), redis_client)
    stop2 = asyncio.Event()
    await run_until(rec2.run(stop2), stop2.set, lambda: sum(rec2.buf.pending().values()) >= 2)
    assert rec2.buf.positions[bus.streams.intent(1001)] == last_entry_id(tmp_path, "intent:1001")
    assert rec2.written == 2  # only the two new ones, written at stop
    ids = [r.id for r in iter_rows(tmp_path) if r.key == "control"]
    assert ids == ["c0", "c1", "c2", "c3", "c4"]
    files = list((tmp_path / "control").glob("*/*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 5


async def test_probe_reports_lag_and_trim_gaps(redis_client, namespace, tmp_path):
    cfg = StackConfig(namespace=namespace)
    bus = Bus(redis_client, namespace)
    stream = bus.streams.control
    ids = await bus.publish(stream, [ctl(0)])
    rec = Recorder(cfg, rcfg(tmp_path), redis_client)
    rec.buf.follow(stream, ids[0])
    await asyncio.sleep(0.01)
    await bus.publish(stream, [ctl(i) for i in range(1, 4)])
    await rec.probe()
    assert rec.behind[stream] > 0
    assert rec.health()["status"] == "ok"  # behind, but less than behind_warn_s
    await redis_client.xtrim(stream, maxlen=1, approximate=False)  # entries 1 and 2 never read
    await rec.probe()
    await rec.probe()  # the same gap counts once
    assert REGISTRY.get_sample_value("lighter_stack_recorder_trim_gaps_total", {"stream": stream}) == 1
    await rec.read()
    await rec.probe()
    assert rec.behind[stream] == 0.0


def test_another_namespaces_archive_stops_the_service(tmp_path):
    write_meta(tmp_path, "live")
    cfg = StackConfig(namespace="paper", services={"recorder": {"out": str(tmp_path), "http_port": 0}})
    assert main(cfg) == 2
