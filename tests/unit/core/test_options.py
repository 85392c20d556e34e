"""The one table of command-line variables: parsing, refusal, help, requested tasks."""
from __future__ import annotations

import pytest

from build.errors import ConfigError, UsageError, exit_codes
from build.options import OPTIONS, OptionSpec, help_table, parse_options, register, requested_tasks


def test_known_variables_are_parsed_to_their_types() -> None:
    options = parse_options({"workers": "2", "relay": "no", "hosts": "a, b", "startup_timeout": "90",
                             "profile": "local"})
    assert options.get("workers") == 2 and options.flag("relay", True) is False
    assert options.get("hosts") == ("a", "b") and options.get("startup_timeout") == 90.0
    assert options.get("profile") == "local" and options.get("dry") is None and not options.flag("dry")


def test_every_bad_value_is_named_at_once() -> None:
    with pytest.raises(UsageError) as error:
        parse_options({"workers": "two", "relay": "maybe", "startup_timeout": "-1"})
    message = str(error.value)
    assert "workers=two: expected a whole number" in message
    assert "relay=maybe" in message and "startup_timeout=-1" in message
    assert error.value.exit_code == 2


def test_unknown_variables_wait_for_the_job_then_are_refused_by_name() -> None:
    options = parse_options({"profle": "local", "epochs": "3"}, ["train:mnist"])
    assert dict(options.extra) == {"profle": "local", "epochs": "3"}
    with pytest.raises(UsageError, match="profle=local"):
        options.refuse_extra({"epochs"})
    parse_options({"epochs": "3"}).refuse_extra({"epochs"})   # declared: fine


def test_refusal_names_the_variable_the_job_and_piforges_own() -> None:
    options = parse_options({"profle": "local", "epochs": "3"}, ["train:mnist"])
    with pytest.raises(UsageError) as error:
        options.refuse_extra({"epochs", "steps"}, whose="train:mnist")
    message = str(error.value)
    assert "profle=local" in message and "epochs=3" not in message
    assert "train:mnist takes epochs, steps" in message and "profile" in message


def test_a_name_registered_twice_with_another_meaning_is_a_bug() -> None:
    register(OPTIONS["dry"])   # the same spec again is fine
    with pytest.raises(ValueError):
        register(OptionSpec("dry", str, "x", "something else", "gc"))


def test_requested_tasks_skip_commands_options_and_variables() -> None:
    assert requested_tasks(["train:mnist", "epochs=3", "-v", "2"]) == ("train:mnist", "2")
    assert requested_tasks(["list", "--all"]) == ()
    assert requested_tasks(["run", "deploy", "hosts=a"]) == ("deploy",)
    assert parse_options({}, ["train:mnist", "tfconfig:x"]).subtasks("train") == ["mnist"]


def test_help_lists_every_variable_once() -> None:
    text = help_table()
    for name in OPTIONS:
        assert sum(line.lstrip().startswith(f"{name}=") for line in text.splitlines()) == 1


def test_exit_codes_are_documented_for_every_error_kind() -> None:
    rows = exit_codes()
    names = [name for _, name, _ in rows]
    assert "ClusterConfigError" in names and "TrainingError" in names and rows[-1][0] == 130
    assert all(meaning for _, _, meaning in rows)


def test_combined_config_errors_keep_every_problem_in_line_order() -> None:
    late = ConfigError("c.toml", 9, "b", "bad")
    early = ConfigError("c.toml", 3, "a", "worse")
    combined = ConfigError.combine([late, early])
    assert str(combined).splitlines() == ["c.toml:3: a: worse", "c.toml:9: b: bad"]
    assert combined.line == 3 and combined.problems == [early, late]
