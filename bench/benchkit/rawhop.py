"""The raw Redis floor of the tick-to-order path: XADD -> XREADGROUP over three hops.

Four OS processes chained through three streams, each with its own connection (redis-py, no
asyncio, no event model): a producer ``XADD``s an entry stamped with ``time.monotonic_ns()``
(one clock for every process on Linux) to stream 1 at a set rate; relay 1 and relay 2 each read
their stream with ``XREADGROUP ... BLOCK`` and, per entry, ``XADD`` it to the next stream and
``XACK`` it in one round trip; the sink reads stream 3 the same way and records
``now - stamp``. Entries carry a ``payload`` of about the size of an encoded ``Bbo`` event.
What is left is what three consumer-group hops between processes cost on this machine and
this Redis: the floor under collector -> strategy -> executor.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid

import redis

PAYLOAD = b"x" * 260  # an encoded Bbo is about 250-270 bytes
GROUP = "g"


def _relay(url: str, src: str, dst: str | None, n: int, out: mp.Queue, ready: mp.Event) -> None:
    """Read ``src`` in group ``g``; forward each entry to ``dst`` (or, for the sink, record its
    latency in ns) and acknowledge it; stop after ``n`` entries (the sink puts the list on ``out``)."""
    r = redis.Redis.from_url(url)
    r.xgroup_create(src, GROUP, id="$", mkstream=True)
    ready.set()
    got = 0
    lat: list[int] = []
    while got < n:
        resp = r.xreadgroup(GROUP, "c", {src: ">"}, count=100, block=1000)
        if not resp:
            continue
        for _stream, entries in resp:
            now = time.monotonic_ns()
            pipe = r.pipeline(transaction=False)
            for eid, fields in entries:
                if dst is not None:
                    pipe.xadd(dst, fields)
                else:
                    lat.append(now - int(fields[b"t"]))
                pipe.xack(src, GROUP, eid)
            pipe.execute()
            got += len(entries)
    if dst is None:
        out.put(lat)


def three_hops(url: str, rate: float, seconds: float, warmup_s: float = 1.0) -> list[float]:
    """Send ``rate`` entries per second for ``warmup_s + seconds`` through the three hops;
    returns the latencies (ms) of the entries sent after the warm-up."""
    tag = uuid.uuid4().hex[:8]
    s1, s2, s3 = (f"rawhop-{tag}:{i}" for i in (1, 2, 3))
    n_warm = int(rate * warmup_s)
    n = n_warm + int(rate * seconds)
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    readies = [ctx.Event() for _ in range(3)]
    procs = [ctx.Process(target=_relay, args=(url, src, dst, n, out, ev), daemon=True)
             for (src, dst), ev in zip(((s1, s2), (s2, s3), (s3, None)), readies, strict=True)]
    for p in procs:
        p.start()
    for ev in readies:
        ev.wait(30)
    r = redis.Redis.from_url(url)
    interval = 1e9 / rate
    t0 = time.monotonic_ns()
    try:
        for i in range(n):
            due = t0 + int(i * interval)
            left = due - time.monotonic_ns()
            if left > 0:
                time.sleep(left / 1e9)
            r.xadd(s1, {b"t": str(time.monotonic_ns()).encode(), b"p": PAYLOAD})
        lat = out.get(timeout=60 + seconds)
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        r.delete(s1, s2, s3)
        r.close()
    return [x / 1e6 for x in lat[n_warm:]]
