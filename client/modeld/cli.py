"""modelctl: the operator's command line for a modeld daemon. It talks only to modeld.Client.

Global options go before or after the subcommand. Exit codes: 0 ok, 1 the
daemon returned an error, 2 usage error, 3 cannot connect, 130 interrupted.
``modelctl --install-completion`` sets up shell completion (model names too).
The commands live in ``modeld._cli.cmd_*``; importing them registers them.
"""

from __future__ import annotations

from modeld._cli import cmd_jobs, cmd_lifecycle, cmd_registry
from modeld._cli.app import app

__all__ = ["app", "main"]

# Imported for their side effect: each module adds its commands to `app`.
_COMMANDS = (cmd_jobs, cmd_registry, cmd_lifecycle)


def main() -> None:
    """The console script's entry point."""
    app(prog_name="modelctl")


if __name__ == "__main__":
    main()
