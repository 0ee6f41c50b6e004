"""What the kep command line and settings accept, read from the code itself (never from a hard-coded list).

``check_argv`` runs ``kep ARGV`` in-process through the typer app's own parsing (subcommands, options,
arguments, value conversion), with the chosen command's function swapped for a recorder, so nothing
starts. ``settings_env_names`` derives the ``KEP_*`` variable names from the pydantic-settings classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import typer
from pydantic_settings import BaseSettings

from kep.cli.main import app
from kep.console.settings import ConsoleSettings
from kep.consumers.settings import ConsumerSettings
from kep.ingest.settings import IngestSettings
from kep.producers.outbox.settings import OutboxSettings
from kep.topology.settings import KafkaSettings


@dataclass
class Invocation:
    """The outcome of parsing one ``kep`` argument vector."""

    argv: list[str]
    path: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    envvars: set[str] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)


def _leaf(root: Any, argv: Sequence[str]) -> tuple[Any, list[str]]:
    """The command ``argv`` selects (walking subcommand names) and its path."""
    command, path = root, []
    for token in argv:
        commands = getattr(command, "commands", None)
        if commands is None or token not in commands:
            break
        command = commands[token]
        path.append(token)
    return command, path


def _envvars(command: Any) -> set[str]:
    names: set[str] = set()
    for param in command.params:
        names |= _envvars_of(param)
    return names


def check_argv(argv: Sequence[str]) -> Invocation:
    """Parse ``kep *argv`` as the real entry point would; problems name the argv and typer's complaint."""
    return _check(tuple(argv))


@cache
def _check(argv: tuple[str, ...]) -> Invocation:
    result = Invocation(list(argv))
    root = typer.main.get_command(app)  # a fresh command tree: swapping a callback stays local
    leaf, result.path = _leaf(root, argv)
    if hasattr(leaf, "commands"):
        result.problems.append(
            f"`kep {' '.join(argv)}`: no such command (stopped at `kep {' '.join(result.path)}`)"
        )
        return result
    result.envvars = _envvars(leaf)
    leaf.callback = lambda **params: result.params.update(params)
    try:
        root.main(args=list(argv), prog_name="kep", standalone_mode=False)
    except Exception as exc:  # typer's usage errors and anything a parameter callback raises
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        result.problems.append(f"`kep {' '.join(argv)}`: {message}")
    return result


def option_envvars(option: str) -> dict[str, set[str]]:
    """The variables each ``kep`` command reads for ``option`` (e.g. ``--registry-url``), by command path."""
    found: dict[str, set[str]] = {}
    pending: list[tuple[list[str], Any]] = [([], typer.main.get_command(app))]
    while pending:
        path, command = pending.pop()
        for name, sub in getattr(command, "commands", {}).items():
            pending.append(([*path, name], sub))
        for param in getattr(command, "params", []):
            if option in getattr(param, "opts", []):
                found[" ".join(path)] = _envvars_of(param)
    return found


def _envvars_of(param: Any) -> set[str]:
    envvar = getattr(param, "envvar", None)
    return {envvar} if isinstance(envvar, str) else set(envvar or ())


def option_default(path: list[str], name: str) -> Any:
    """The default of parameter ``name`` of ``kep *path``."""
    leaf, found = _leaf(typer.main.get_command(app), path)
    assert found == path, f"no command `kep {' '.join(path)}`"
    for param in leaf.params:
        if param.name == name:
            return param.default
    raise KeyError(f"`kep {' '.join(path)}` has no parameter {name!r}")


def settings_env_names(*classes: type[BaseSettings]) -> set[str]:
    """``KEP_*`` variable names of settings classes: the env prefix plus each field name, upper case."""
    names: set[str] = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix", ""))
        names.update(f"{prefix}{name}".upper() for name in cls.model_fields)
    return names


SETTINGS_ENV = settings_env_names(
    KafkaSettings, ConsumerSettings, ConsoleSettings, IngestSettings, OutboxSettings
)
