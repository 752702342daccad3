"""The operator's settings: parsed once from its environment and flags, with clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seas_operator.settings import OperatorSettings, SettingsError, load_settings


def test_defaults_without_environment():
    assert load_settings({}) == OperatorSettings()
    assert OperatorSettings().namespaces == () and OperatorSettings().backend == "pytorchjob"


def test_environment_and_flags():
    env = {"SEAS_RUNTIME_IMAGE": "reg/rt:2", "SEAS_DEFAULT_PVC": "pvc-a", "SEAS_DEFAULT_TRAINING_BACKEND": "trainjob",
           "SEAS_RECONCILE_INTERVAL": "2.5", "SEAS_RETRY_BASE_SECONDS": "1", "UNRELATED": "x"}
    settings = load_settings(env, namespaces=["a", "b"], metrics_port=9090, health_port=0)
    assert (settings.image, settings.pvc, settings.backend, settings.interval) == ("reg/rt:2", "pvc-a", "trainjob", 2.5)
    assert settings.retry_base_seconds == 1.0
    assert settings.namespaces == ("a", "b") and settings.metrics_port == 9090 and settings.health_port == 0


def test_empty_environment_values_keep_the_defaults():
    assert load_settings({"SEAS_RUNTIME_IMAGE": ""}).image == OperatorSettings().image


@pytest.mark.parametrize("env, needle", [
    ({"SEAS_DEFAULT_TRAINING_BACKEND": "mpijob"}, "backend"),
    ({"SEAS_RECONCILE_INTERVAL": "soon"}, "interval"),
    ({"SEAS_RECONCILE_INTERVAL": "0"}, "interval"),
])
def test_bad_settings_name_the_setting(env, needle):
    with pytest.raises(SettingsError, match=needle):
        load_settings(env)


def test_a_bad_setting_stops_seas_operator_with_exit_2_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "seas_operator.cli", "operator", "-A"], capture_output=True, text=True, timeout=60,
                          env={"SEAS_DEFAULT_TRAINING_BACKEND": "mpijob", "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert proc.returncode == 2
    assert "backend" in proc.stderr and "Traceback" not in proc.stderr
