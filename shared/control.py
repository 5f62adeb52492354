"""Operator control events: the one way to build the ``Control`` events the executor reads from
``{ns}:control`` (kill, pause, resume, flatten; see ``docs/runbook.md`` "Kill switch").

Used by the notifier's Telegram commands; any other writer of operator commands (a CLI) should
build its events here too, so every command on the stream has the same shape.
"""

from __future__ import annotations

import time
from typing import Literal, cast, get_args

from shared.events import Control, derive_id

Command = Literal["pause", "resume", "kill", "flatten"]
COMMANDS: tuple[str, ...] = get_args(Command)


def control_event(command: str, target: str = "*", reason: str = "", *, source: str = "operator",
                  ts_ns: int | None = None, key: object = None) -> Control:
    """A :class:`~shared.events.Control` ready to publish on ``{ns}:control``.

    Args:
        command: ``pause``, ``resume``, ``kill`` or ``flatten``.
        target: a strategy name or ``*`` (all); ``kill`` always targets ``*``.
        reason: free text the executor shows in its ``RiskState`` (e.g. ``telegram /kill by 42``).
        source: the writer (``operator``, ``notifier``, ...).
        ts_ns: event time in ns since the epoch (default: the wall clock now: an operator
            command is an external fact).
        key: anything unique to this command (e.g. a Telegram ``update_id``); the event id is
            derived from it, so the same command delivered twice gets the same id and the executor
            drops the second. Default: the time and the other fields.

    Raises:
        ValueError: an unknown command, or an empty target.
    """
    if command not in COMMANDS:
        raise ValueError(f"unknown control command {command!r} (known: {', '.join(COMMANDS)})")
    if not target:
        raise ValueError("control target must be a strategy name or '*'")
    ts = time.time_ns() if ts_ns is None else ts_ns
    target = "*" if command == "kill" else target
    eid = derive_id("control", source, command, target, ts if key is None else key)
    return Control(id=eid, ts_event=ts, source=source, command=cast(Command, command), target=target,
                   reason=reason)
