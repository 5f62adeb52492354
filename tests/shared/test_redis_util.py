"""``shared.redis_util.free_port``: ports for services a test or the demo starts."""

from __future__ import annotations

import socket

from shared.redis_util import _ephemeral_low, free_port


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50  # never the same port twice, even before any is bound
    low = _ephemeral_low()
    if low > 11000:
        assert all(10000 <= p < low for p in ports)  # outgoing connections never take these
    for p in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
