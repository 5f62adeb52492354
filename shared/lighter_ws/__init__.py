"""Lighter's public market-data WebSocket, read side.

Shared by every service that reads Lighter's ``order_book``/``trade``/``market_stats`` channels:
the collector (publishes the events on the bus) and venue-sim's live source (feeds them to its
matching engine, docs/venue-sim.md "Live source"). :mod:`.parse` decodes and validates frames,
:mod:`.book` keeps one market's book from snapshots and nonce-checked updates, :mod:`.engine`
turns raw frames into events and control messages, :mod:`.connection` keeps the WebSocket
open (reconnecting), :mod:`.metadata` reads market metadata
(``orderBookDetails``) with retries. ``parse``, ``book`` and ``engine`` are pure (no I/O, no
clock); ``connection`` and ``metadata`` do the I/O.
"""
