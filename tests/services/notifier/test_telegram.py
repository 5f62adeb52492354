"""The notifier's Telegram pieces without a network: command parsing, the outbox's batching and
splitting, and the log filter that hides the token."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from services.notifier.engine import Notice
from services.notifier.telegram import Outbox, RedactFilter, parse_command, protect_logs


def test_parse_command() -> None:
    assert parse_command("/kill") == ("kill", "")
    assert parse_command("/pause@MyBot  trend ") == ("pause", "trend")
    assert parse_command("/FLATTEN all") == ("flatten", "all")
    assert parse_command("kill") is None and parse_command("/rm -rf") is None and parse_command("") is None


def test_outbox_batches_and_splits_at_the_limit() -> None:
    box = Outbox(capacity=5)
    box.add([Notice("a", "x" * 100), Notice("b", "y" * 100), Notice("c", "z" * 100)])
    assert box.take(250) == "x" * 100 + "\n" + "y" * 100  # the third would exceed 250
    assert box.take(250) == "z" * 100 and box.take(250) is None
    box.add([Notice("a", str(i)) for i in range(8)])
    assert box.dropped == 3 and box.take(4000) == "3\n4\n5\n6\n7"
    box.add(["w" * 300])
    assert box.take(250) == "w" * 249 + "…"


def test_redact_filter_hides_the_token_in_messages_arguments_and_tracebacks(caplog) -> None:
    token = "999:SECRET-abc"
    log = logging.getLogger("test.redact")
    flt = RedactFilter(token)
    log.addFilter(flt)
    try:
        with caplog.at_level(logging.INFO, logger="test.redact"):
            log.info("POST https://api.telegram.org/bot%s/sendMessage", token)
            try:
                raise RuntimeError(f"bad url /bot{token}/getMe")
            except RuntimeError:
                log.exception("failed")
    finally:
        log.removeFilter(flt)
    assert token not in caplog.text and "bot***/sendMessage" in caplog.text and "/bot***/getMe" in caplog.text


def test_protect_logs_quiets_httpx() -> None:
    protect_logs(SecretStr("1:x"))
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    root = logging.getLogger()
    for f in [f for f in root.filters if isinstance(f, RedactFilter)]:
        root.removeFilter(f)
