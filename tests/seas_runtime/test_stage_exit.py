"""How a stage that fails on a user error says so: its exit code, and the same code in its termination message.

torchrun reports every failed worker as exit 1, so the operator reads the code back from the message.
"""

from __future__ import annotations

import pytest

from seas_runtime import cli
from seas_runtime.contract import EXIT_CONFIG, user_error_code, user_error_message


@pytest.mark.parametrize("config, expected", [
    ("{not json", "invalid stage config"),
    ('{"stage": "attack"}', "invalid stage config"),
])
def test_a_bad_config_exits_2_and_says_so_in_the_termination_message(tmp_path, capsys, config, expected):
    path, log = tmp_path / "config.json", tmp_path / "termination-log"
    path.write_text(config)
    assert cli.main(["evaluate", "--config", str(path), "--termination-log", str(log)]) == EXIT_CONFIG
    message = log.read_text()
    assert user_error_code(message) == EXIT_CONFIG
    assert expected in message and expected in capsys.readouterr().err


def test_a_missing_config_env_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SEAS_NO_SUCH_CONFIG", raising=False)
    log = tmp_path / "termination-log"
    assert cli.main(["pairs", "--config-env", "SEAS_NO_SUCH_CONFIG", "--termination-log", str(log)]) == EXIT_CONFIG
    assert log.read_text().startswith("seas-runtime exit 2: ")


@pytest.mark.parametrize("message, code", [
    (user_error_message(3, "model missing"), 3),
    (user_error_message(2, "bad config"), 2),
    (user_error_message(1, "a crash is no user error"), None),
    ('{"stage": "evaluate"}', None),
    (None, None),
])
def test_user_error_code_reads_only_our_own_user_error_codes(message, code):
    assert user_error_code(message) == code
