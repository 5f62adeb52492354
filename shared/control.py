"""Building and publishing the operator's ``Control`` events (kill, resume, pause, flatten).

One place for every writer of ``{ns}:control``: ``lighter-stack control`` (the CLI) and the
notifier's Telegram commands. The executor applies them (``services/executor/control.py``):

- ``kill``: halt, cancel the account's resting orders, keep positions, forget standing targets;
  always for the whole account (target ``*``).
- ``resume *``: clear the kill, every pause and a flatten; ``resume STRATEGY``: that strategy's
  pause only.
- ``pause STRATEGY`` (or ``*``): ignore its intents and cancel its resting orders.
- ``flatten STRATEGY``: target 0 for it; ``flatten *``: every strategy's position **and** the part
  of the account position no strategy holds (e.g. one held before start-up), so the account ends
  flat; the executor stays REDUCING until ``resume *``.
"""

from __future__ import annotations

import os
import time
from typing import Literal, cast

from shared.bus import Bus
from shared.events import Control, derive_id

Command = Literal["pause", "resume", "kill", "flatten"]
COMMANDS: tuple[str, ...] = ("pause", "resume", "kill", "flatten")


class ControlError(ValueError):
    """A control command that cannot be built (unknown command, missing or forbidden target)."""


def control_event(command: str, strategy: str | None = None, reason: str = "", source: str = "operator",
                  ts_ns: int | None = None, *, key: object = None) -> Control:
    """The ``Control`` event for one operator command.

    Args:
        command: ``kill``, ``resume``, ``pause`` or ``flatten``.
        strategy: the target strategy name; None or ``"*"`` = all. ``kill`` takes no strategy
            (it always halts the whole account); ``pause`` needs one (or ``"*"`` explicitly).
        reason: free text shown in the executor's ``RiskState`` reason (kill) and logs.
        source: who sent it (``operator``, ``cli``, ``telegram:<user>``): the event's ``source``.
        ts_ns: event time, ns since the epoch (default: now, wall clock).
        key: anything unique to this command (e.g. a Telegram ``update_id``): the id is derived
            from it instead, so the same command delivered twice gets the same id and the executor
            applies it once.

    Returns:
        A ``Control`` with a unique id (BLAKE2b of command, target, time and pid; or of ``key``).

    Raises:
        ControlError: unknown command, a kill for one strategy, a pause without a target.
    """
    if command not in COMMANDS:
        raise ControlError(f"unknown control command {command!r}; choose one of: {', '.join(COMMANDS)}")
    target = strategy or "*"
    if command == "kill" and target != "*":
        raise ControlError("kill halts the whole account: it takes no strategy (use pause STRATEGY)")
    if command == "pause" and strategy is None:
        raise ControlError("pause needs a strategy (or '*' for all)")
    ts = time.time_ns() if ts_ns is None else ts_ns
    eid = (derive_id("control", command, target, ts, os.getpid(), source) if key is None
           else derive_id("control", source, command, target, key))
    return Control(id="op-" + eid, ts_event=ts,
                   source=source, command=cast(Command, command), target=target, reason=reason)


async def publish_control(bus: Bus, event: Control) -> str:
    """Append ``event`` to the namespace's control stream ``{ns}:control``; returns its entry id."""
    (entry,) = await bus.publish(bus.streams.control, [event])
    return entry
