"""``shared.redis_util.free_port``: ports for services a test or the demo starts."""

from __future__ import annotations

import socket

from shared.redis_util import _ephemeral_low, free_port, redis_reachable


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50  # never the same port twice, even before any is bound
    low = _ephemeral_low()
    if low > 11000:
        assert all(10000 <= p < low for p in ports)  # outgoing connections never take these
    for p in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))


def test_embedded_redis_restarts_on_its_port_with_or_without_its_data():
    import redis

    from shared.redis_util import EmbeddedRedis

    for appendonly in (True, False):
        server = EmbeddedRedis(appendonly=appendonly).start()
        try:
            c = redis.Redis.from_url(server.url)
            c.xadd("s", {"a": 1})
            c.xgroup_create("s", "g", id="0")
            c.close()
            server.shutdown()  # SHUTDOWN NOSAVE: the append-only file (when on) is flushed
            assert not redis_reachable(server.url, timeout=0.2)
            server.start()  # same port, same directory
            c = redis.Redis.from_url(server.url)
            assert c.xlen("s") == (1 if appendonly else 0)
            assert len(c.xinfo_groups("s")) == 1 if appendonly else not c.exists("s")
            c.close()
        finally:
            server.stop()
