"""Typed parameters: the notebooks' parameters cells declare them, values are checked before any run.

All in-process: papermill reads the cells without a kernel.
"""

from __future__ import annotations

import pytest

from runbook_lib import cli, parameters, runner
from runbook_lib.parameters import ParameterError


@pytest.fixture(scope="module")
def provider():
    return parameters.declared(runner.notebook_path("provider"))


@pytest.mark.parametrize("section", runner.sections())
def test_every_default_is_a_value_of_its_own_type(section):
    declared = parameters.declared(runner.notebook_path(section))
    assert declared, f"{section} declares no parameters"
    for p in declared.values():
        assert parameters.coerce(p, p.default) == p.default, p


def test_the_provider_notebook_declares_its_types(provider):
    assert {n: p.type for n, p in provider.items() if n in ("log_tail", "log_since", "try_provider_login")} == \
        {"log_tail": "int", "log_since": "duration", "try_provider_login": "bool"}


@pytest.mark.parametrize("name, raw, expected", [
    ("try_provider_login", "false", False), ("try_provider_login", "True", True),
    ("log_tail", "200", 200), ("log_since", "24h", "24h"), ("log_since", "2d", "48h"),
    ("log_since", "1h30m", "1h30m"), ("log_since", "", ""),
])
def test_values_are_converted(provider, name, raw, expected):
    assert parameters.convert({name: raw}, provider) == {name: expected}


@pytest.mark.parametrize("name, raw, expects", [
    ("try_provider_login", "maybe", "true or false"),
    ("try_provider_login", "yes", "true or false"),  # strict: an opt-out never fails open
    ("log_tail", "lots", "an integer"),
    ("log_tail", "5.5", "an integer"),
    ("log_since", "yesterday", "a duration such as 30s, 30m, 24h, 2d or 1h30m"),
])
def test_bad_values_are_refused_with_the_name_and_what_is_expected(provider, name, raw, expects):
    with pytest.raises(ParameterError) as err:
        parameters.convert({name: raw}, provider)
    message = str(err.value)
    assert message.startswith(f"parameter '{name}' expects {expects}") and message.endswith(f", got '{raw}'")


def test_seconds_since_and_choices():
    seconds = parameters.Param("stuck_after", "seconds", 900)
    assert [parameters.coerce(seconds, v) for v in ("15m", "900", "1h", 60)] == [900, 900, 3600, 60]
    since = parameters.Param("since", "since", "1h")
    assert parameters.coerce(since, "2026-11-27T10:00:00Z") == "2026-11-27T10:00:00Z"
    with pytest.raises(ParameterError, match="or an RFC 3339 time"):
        parameters.coerce(since, "last tuesday")
    choice = parameters.Param("mode", "choice", "ok", choices=("ok", "crash"))
    with pytest.raises(ParameterError, match="expects one of ok, crash, got 'sideways'"):
        parameters.coerce(choice, "sideways")


def test_a_secret_looking_value_is_never_echoed():
    p = parameters.Param("api_token_count", "int", 3)
    with pytest.raises(ParameterError) as err:
        parameters.coerce(p, "hunter2-literal")
    assert "hunter2" not in str(err.value)


def test_the_command_refuses_before_reading_the_site_or_starting_anything(tmp_path, capsys):
    missing_site = tmp_path / "nosuch.yaml"  # never read: the parameter is refused first
    code = cli.main(["run", "provider", "--site", str(missing_site), "-p", "try_provider_login", "maybe"])
    err = capsys.readouterr().err
    assert code == 3 and err == "runbook: parameter 'try_provider_login' expects true or false, got 'maybe'\n"
    assert not (tmp_path / "outputs").exists()
