"""A guard that makes the test session fail when a test reads a file next to the repository.

Tests read only files inside the repository (``data/``, ``tests/fixtures/``) and the temporary
folders they make: a clone in an empty folder must pass. The typical mistake is a path such as
``REPO.parent / "shared" / ...``, which works in the developer's workspace and fails in CI. The
guard is a :func:`sys.audit` hook on the ``open`` event (every ``open()``, ``Path.read_text()``,
``io.open_code``): an open of a path under the repository's parent folder but outside the repository
raises :class:`PermissionError` naming the path. It covers the pytest process only (not the
subprocesses of the end-to-end tests), and paths under the temporary folder and the Python
installation (``sys.prefix``, ``sys.base_prefix``) are allowed. It stays off when the repository's
parent is ``/``, the home folder or the temporary folder itself, where such reads are normal
(caches, user site-packages, pytest's ``tmp_path``)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_installed: list[Path] = []


def _under(p: str, folder: str) -> bool:
    return p == folder or p.startswith(folder.rstrip(os.sep) + os.sep)


def forbidden(path: str, repo: Path) -> bool:
    """True when the absolute form of ``path`` lies under ``repo.parent`` but not under ``repo``,
    the temporary folder or the Python installation (``repo`` is an absolute, resolved path).
    An allowed folder that contains the repository itself (a clone inside ``/tmp``) allows
    nothing beyond the repository."""
    p = os.path.abspath(path)
    if not _under(p, str(repo.parent)):
        return False
    extra = {tempfile.gettempdir(), sys.prefix, sys.base_prefix, sys.exec_prefix}
    allowed = [str(repo)] + [a for a in extra if not _under(str(repo), a)]
    return not any(_under(p, a) for a in allowed)


def forbid_reads_outside_repo(repo: Path) -> bool:
    """Install the audit hook for ``repo`` (once per process; audit hooks cannot be removed).
    Returns False, installing nothing, when ``repo.parent`` is ``/``, the home folder or the
    temporary folder."""
    repo = repo.resolve()
    skip = {Path("/"), Path.home().resolve(), Path(tempfile.gettempdir()).resolve()}
    if repo.parent in skip:
        return False
    if _installed:
        return True
    _installed.append(repo)

    def hook(event: str, args: tuple) -> None:
        if event != "open" or not args or isinstance(args[0], int) or args[0] is None:
            return
        try:
            path = os.fsdecode(args[0])
        except TypeError:
            return
        if forbidden(path, repo):
            raise PermissionError(f"a test opened {path}, outside the repository {repo}: copy what it needs "
                                  f"into tests/fixtures/ (with a PROVENANCE.md)")

    sys.addaudithook(hook)
    return True
