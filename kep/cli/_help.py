"""Help that reads like the Kafka tools': ``--limit N``, ``TOPIC``, flags without a type.

typer (0.29) shows a type after every option, flags included (``--json <bool>``, ``--help <bool>``), and wraps
required arguments in braces in the usage line (``{topic}``). kep's help shows instead:

* an option's metavar (``--limit N``, ``--bootstrap-servers HOST:PORT,...``), else its type in capitals, as click
  does (``TEXT``, ``INTEGER``, ``FLOAT``, ``PATH``, or the choices ``[backward|forward|full]``);
* nothing after a flag;
* arguments in capitals (``TOPIC``), optional ones in brackets, never a type.

``install()`` patches typer's parameter classes once; ``tests/test_cli_convention.py`` checks every command's
rendered help, so a typer that no longer has these hooks fails there rather than showing ``<str>`` again.
"""

from __future__ import annotations

from typing import Any

from typer import core

_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "bool": "BOOLEAN"}
_installed = False


def _option_metavar(self: Any, ctx: Any) -> str | None:
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    if self.metavar is not None:
        return str(self.metavar)
    label = str(core.TyperOption.display_type(self, ctx)).strip("<>")
    if "|" in label:
        return f"[{label}]"
    return _TYPE_NAMES.get(label, label.upper())


def _argument_display(self: Any) -> str:
    return str(self.metavar if self.metavar is not None else self.name.upper())


def _argument_name(self: Any) -> str:
    return _argument_display(self) + ("..." if self.nargs != 1 else "")


def _argument_usage(self: Any) -> str:
    name = _argument_name(self)
    return name if self.required else f"[{name}]"


def install() -> None:
    """Patch typer's help rendering as the module docstring says (idempotent)."""
    global _installed
    if _installed:
        return
    core.TyperOption.display_type_rich = _option_metavar  # type: ignore[method-assign]
    core.TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
    core.TyperArgument.display_name_raw = property(_argument_display)  # type: ignore[assignment]
    core.TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
    core.TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
    _installed = True
