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


@pytest.mark.parametrize("section", runner.sections())
def test_a_kernel_reads_the_same_names_papermill_does(section):
    """``names`` (what a run reads at its start, without papermill) agrees with ``declared``."""
    path = runner.notebook_path(section)
    assert parameters.names(path) == list(parameters.declared(path))


def test_gather_options_come_from_the_parameters_of_the_same_names():
    from runbook_lib.gather import options, provider, provisioning

    opts = options(provider.Options, {"site_file": "x", "log_tail": 0, "log_since": "", "try_provider_login": False})
    assert (opts.log_tail, opts.log_since, opts.try_provider_login) == (None, None, False)  # empty: no limit
    assert opts.probe_timeout == provider.Options().probe_timeout  # no parameter: the default
    opts = options(provider.Options, {"log_tail": 200, "log_since": "24h"})
    assert (opts.log_tail, opts.log_since) == (200, "24h")
    opts = options(provisioning.Options, {"probe_timeout": 3, "max_probes": 2, "vm_grace": 60, "stuck_after": 900,
                                          "min_talos_version": "1.7.0", "headless": True})
    assert isinstance(opts.probe_timeout, float) and opts.max_probes == 2
    assert opts.limits == {"vm_grace": 60, "stuck_after": 900, "min_talos_version": "1.7.0"}  # the LIMITS named
    with pytest.raises(TypeError, match="try_provider_login must be true or false"):
        options(provider.Options, {"try_provider_login": "false"})


# read by the runner, or by the run itself (site_file: Run.load_site; apply_fix, recheck_timeout: Run.apply_fix)
READ_BY_THE_RUN = {"site_file", "headless", "run_id", "verdict_path", "record_dir", "apply_fix", "recheck_timeout"}


def option_names(section: str) -> set[str]:
    """The gathering options of a section (its ``Options`` fields and ``LIMITS``); none without a module."""
    import dataclasses
    import importlib

    try:
        module = importlib.import_module(f"runbook_lib.gather.{section}")
    except ModuleNotFoundError:
        return set()
    return {f.name for f in dataclasses.fields(module.Options)} | set(getattr(module.Options, "LIMITS", ()))


@pytest.mark.parametrize("section", runner.sections())
def test_every_declared_parameter_is_read(section):
    """Each parameter reaches what it sets under its own name: a gathering option of the same name, the
    runner or the run, or a cell that reads it from the run (``run.params.NAME``). A parameter under
    another name than its option (``stuck_after_minutes`` for ``stuck_after``) would be read by none."""
    import ast
    import json

    path = runner.notebook_path(section)
    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    read_in_cells = {n.attr for source in cells for n in ast.walk(ast.parse(source))
                     if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "params"}
    unread = set(parameters.names(path)) - READ_BY_THE_RUN - option_names(section) - read_in_cells
    assert unread == set()


@pytest.mark.parametrize("section", [s for s in runner.sections() if option_names(s)])
def test_the_declared_defaults_reach_the_options_unchanged(section):
    import importlib

    from runbook_lib.gather import options

    cls = importlib.import_module(f"runbook_lib.gather.{section}").Options
    values = {name: p.default for name, p in parameters.declared(runner.notebook_path(section)).items()}
    opts = options(cls, values)
    for name in option_names(section) & set(values):
        got = opts.limits[name] if name in getattr(cls, "LIMITS", ()) else getattr(opts, name)
        assert got == values[name] or (got is None and not values[name]), name
