"""Help that reads like the README: flags without a value show no type, arguments are MODEL.

Typer renders a boolean flag as `--json <bool>` (as if it took a value) and a required
argument as `{model}` in the usage line. `plain_help(command)` rewrites the parameters of a
built click command tree in place, once, before any help is printed.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperArgument, TyperOption

__all__ = ["HELP_NAMES", "plain_help"]

HELP_NAMES = ["-h", "--help"]

_DONE = "_modelctl_plain_help"


class _Argument(TyperArgument):
    """An argument shown as MODEL (required) or [SOURCE] (optional) in the usage line."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        name = name if self.required else f"[{name}]"
        return name + ("..." if self.nargs != 1 else "")

    def display_type_rich(self, ctx: Any) -> str | None:
        # MODEL says what it is; `<str>` after it adds nothing. Numbers keep `<int>`.
        shown = super().display_type_rich(ctx)
        return None if shown == "<str>" else shown


def plain_help(command: Any) -> None:
    """Rewrites a command's parameters, and its subcommands' (recursively), for help."""
    if getattr(command, _DONE, False):
        return
    # -h/--help is made on first use and cached by the command: make it now, to rewrite it too.
    help_option = command.get_help_option(typer.Context(command, help_option_names=HELP_NAMES))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""  # shown as is: nothing after a flag that takes no value
        elif isinstance(param, TyperArgument) and not isinstance(param, _Argument):
            param.__class__ = _Argument
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
    setattr(command, _DONE, True)
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
