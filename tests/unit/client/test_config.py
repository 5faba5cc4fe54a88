"""ClientConfig: one frozen object, every field with its default, shared with dshd's."""

from __future__ import annotations

import inspect

import pytest

from dsh.client.config import _FIELDS, ClientConfig


def test_client_config_fields_are_its_signature() -> None:
    params = inspect.signature(ClientConfig).parameters
    assert tuple(params) == _FIELDS
    config = ClientConfig()
    assert all(getattr(config, name) == p.default for name, p in params.items())
    changed = config.replace(attempts=5)
    assert changed.attempts == 5 and config.attempts == 3 and changed != config
    with pytest.raises(AttributeError, match="frozen"):
        config.attempts = 4
    from dsh.daemon import config as daemon_config

    # (dsh.daemon.config re-exports it without saying so to mypy: a src matter)
    assert (config.best_port, config.status_port) == (
        daemon_config.DEFAULT_BEST_PORT,
        daemon_config.DEFAULT_STATUS_PORT,
    )
