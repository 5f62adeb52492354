"""lighter_stack/control_tool.py: the CLI's targets (the command itself runs against the real
executor in tests/integration/test_control_flatten.py)."""

from __future__ import annotations

import pytest

from lighter_stack.control_tool import resolve_target
from shared.control import ControlError


def test_cli_targets():
    assert resolve_target("flatten", None, True) == "*"
    assert resolve_target("flatten", "trend", False) == "trend"
    assert resolve_target("resume", None, False) is None
    for args in (("flatten", None, False), ("pause", None, False), ("flatten", "trend", True)):
        with pytest.raises(ControlError):
            resolve_target(*args)
