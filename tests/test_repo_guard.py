"""The guard of tests/support/repo_guard.py: reads next to the repository fail, reads inside it,
in the temporary folder and outside the repository's parent pass."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from repo_guard import forbidden

REPO = Path(__file__).resolve().parent.parent


def test_forbidden_paths():
    assert forbidden(str(REPO.parent / "shared" / "data" / "x.csv"), REPO)
    assert forbidden(str(REPO.parent / "other-checkout" / "tests" / "fixtures" / "a.json"), REPO)
    assert not forbidden(str(REPO / "tests" / "fixtures" / "lighter-samples" / "ws_trade_update.json"), REPO)
    assert not forbidden(str(REPO / "data" / "recordings"), REPO)
    assert not forbidden("/etc/hostname", Path("/srv/ws/repo"))  # outside the parent: not the guard's business
    # a clone inside the temporary folder: its siblings are still forbidden, other temp files are not
    clone = Path(tempfile.gettempdir()) / "cleanclone-x" / "repo"
    assert forbidden(str(clone.parent / "shared" / "data" / "x.csv"), clone)
    assert not forbidden(str(clone / "tests" / "fixtures" / "x.csv"), clone)


def test_session_guard_stops_a_read_next_to_the_repo(tmp_path):
    """The conftest installs the guard: opening a file beside the repository raises, naming the path
    (the file need not exist; the hook runs before the open)."""
    target = REPO.parent / "shared" / "data" / "no-such-file.csv"
    with pytest.raises(PermissionError, match="outside the repository"):
        target.read_text()
    (tmp_path / "ok.txt").write_text("fine")  # the temporary folder is allowed
    assert (tmp_path / "ok.txt").read_text() == "fine"
