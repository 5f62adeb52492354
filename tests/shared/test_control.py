"""shared/control.py: the operator's Control events (used by ``lighter-stack control`` and the
notifier's Telegram commands)."""

from __future__ import annotations

import pytest

from shared.bus import Bus
from shared.control import ControlError, control_event, publish_control
from shared.events import Control


def test_events_carry_command_target_reason_and_source():
    ev = control_event("flatten", None, reason="close all", source="telegram:42", ts_ns=5)
    assert (ev.command, ev.target, ev.reason, ev.source, ev.ts_event) == ("flatten", "*", "close all",
                                                                           "telegram:42", 5)
    assert control_event("pause", "maker").target == "maker"
    assert control_event("resume").target == "*"
    assert control_event("kill", reason="x").target == "*"


def test_ids_are_unique_per_command_and_time():
    a, b = control_event("kill", ts_ns=1), control_event("kill", ts_ns=2)
    assert a.id != b.id and a.id.startswith("op-")


@pytest.mark.parametrize(("command", "strategy"), [("stop", None), ("kill", "maker"), ("pause", None)])
def test_bad_commands_are_refused(command, strategy):
    with pytest.raises(ControlError):
        control_event(command, strategy)


async def test_published_on_the_control_stream(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    ev = control_event("pause", "grid", source="cli")
    await publish_control(bus, ev)
    (d,) = await bus.read_all(bus.streams.control)
    assert isinstance(d.event, Control) and d.event == ev
