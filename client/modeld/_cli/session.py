"""modelctl's plumbing: global options, the one Client, exit codes, global flags anywhere.

Exit codes: 0 success; 1 the daemon answered with an error (its status code
and message on stderr, never a traceback); 2 usage error (click's own, and bad
input files); 3 the daemon could not be reached (the message names the
address); 130 interrupted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

from modeld._channel import TLSConfig
from modeld._cli.helpfmt import plain_help
from modeld._cli.inputs import InputError
from modeld._cli.output import Output
from modeld.client import Client
from modeld.errors import ConnectionFailed, ModeldError

__all__ = ["EXIT_CONNECT", "EXIT_SERVER", "EXIT_USAGE", "GlobalFlagsGroup", "Session",
           "session"]

EXIT_SERVER = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3

# Global options that may also be written after the subcommand (`modelctl status --json`),
# as kubectl and gh allow. Flags take no value; the others take exactly one.
_GLOBAL_FLAGS = frozenset({"--json", "--quiet", "-q", "--tls"})
_GLOBAL_VALUED = frozenset({"--address", "--token", "--timeout", "--ca-cert", "--client-cert",
                            "--client-key"})


@dataclasses.dataclass
class Session:
    """What the global options chose; opens the Client on first use."""

    address: str
    token: str | None
    tls: TLSConfig | bool | None
    timeout: float
    out: Output
    _client: Client | None = None

    def client(self) -> Client:
        """The Client for this run (one channel, closed when the command ends)."""
        if self._client is None:
            # No retries: an operator wants "cannot connect" at once, not after 30 s of
            # backoff; the library's retries are for long-running scripts.
            self._client = Client(self.address, token=self.token, tls=self.tls,
                                  timeout=self.timeout, retry=None)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def session(ctx: typer.Context) -> Session:
    """The Session the global callback stored on the context.

    Args:
        ctx: The command's context.

    Returns:
        The session.
    """
    obj = ctx.find_root().obj
    assert isinstance(obj, Session), "the global callback did not run"
    return obj


@contextmanager
def exit_codes(ctx: Any) -> Iterator[None]:
    """Turns the client's exceptions into a message on stderr and an exit code."""
    try:
        yield
    except ConnectionFailed as exc:
        # The message already says "cannot connect to ADDRESS: why"; the code adds nothing.
        _out(ctx).error(exc.code.name, exc.message, show_code=False)
        raise typer.Exit(EXIT_CONNECT) from None
    except ModeldError as exc:
        _out(ctx).error(exc.code.name, exc.message)
        raise typer.Exit(EXIT_SERVER) from None
    except InputError as exc:
        _out(ctx).error("USAGE", str(exc))
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        obj = ctx.find_root().obj if ctx is not None else None
        if isinstance(obj, Session):
            obj.close()


def _out(ctx: Any) -> Output:
    obj = ctx.find_root().obj if ctx is not None else None
    return obj.out if isinstance(obj, Session) else Output()


class GlobalFlagsGroup(TyperGroup):
    """The command group: maps errors to exit codes and accepts global options anywhere."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_help(self)  # before --help can print: flags without <bool>, arguments as MODEL
        return super().parse_args(ctx, hoist_global_options(args))

    def invoke(self, ctx: Any) -> Any:
        with exit_codes(ctx):
            return super().invoke(ctx)


def hoist_global_options(args: list[str]) -> list[str]:
    """Moves global options written after the subcommand to before it.

    Args:
        args: The command line after the program name.

    Returns:
        The same words, global options first. Words after "--" are left alone.
        A command option whose value looks like a global flag (``--reason --json``)
        would be split; write it as ``--reason=--json``.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            rest.extend(args[i:])
            break
        name = word.split("=", 1)[0]
        if word in _GLOBAL_FLAGS or (name in _GLOBAL_VALUED and "=" in word):
            front.append(word)
        elif word in _GLOBAL_VALUED and i + 1 < len(args):
            front.extend(args[i:i + 2])
            i += 1
        else:
            rest.append(word)
        i += 1
    return front + rest
