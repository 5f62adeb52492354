"""The notifier's config: compose's empty pass-through variables mean unset, a bad value names
its field, and the token cannot be put in the file (it comes only from the environment)."""

from __future__ import annotations

import pytest

from lighter_stack import registry
from services.notifier.config import NotifierConfig
from shared.config import ConfigError, load_config


def _load(monkeypatch, **env: str) -> NotifierConfig:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return load_config(None, sections=registry.config_sections()).section("notifier", NotifierConfig)


def test_empty_chat_and_thread_from_compose_are_unset(monkeypatch) -> None:
    n = _load(monkeypatch, LS_SERVICES__NOTIFIER__CHAT_ID="", LS_SERVICES__NOTIFIER__THREAD_ID="")
    assert n.chat_id is None and n.thread_id is None
    n = _load(monkeypatch, LS_SERVICES__NOTIFIER__CHAT_ID="-100123", LS_SERVICES__NOTIFIER__THREAD_ID="5")
    assert n.chat_id == -100123 and n.thread_id == 5


def test_bad_values_name_the_field_and_the_token_is_no_config_key(monkeypatch) -> None:
    with pytest.raises(ConfigError, match="services.notifier.thread_id"):
        _load(monkeypatch, LS_SERVICES__NOTIFIER__THREAD_ID="topic")
    monkeypatch.delenv("LS_SERVICES__NOTIFIER__THREAD_ID")
    with pytest.raises(ConfigError, match="services.notifier.token: unknown key"):
        _load(monkeypatch, LS_SERVICES__NOTIFIER__TOKEN="1:abc")


def test_token_comes_from_the_named_variable(monkeypatch) -> None:
    monkeypatch.setenv("MY_BOT", " 1:abc ")
    tok = NotifierConfig(token_env="MY_BOT").token()
    assert tok is not None and tok.get_secret_value() == "1:abc" and "1:abc" not in repr(tok)
    monkeypatch.setenv("MY_BOT", "")
    assert NotifierConfig(token_env="MY_BOT").token() is None
