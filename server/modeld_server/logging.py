"""structlog set-up, done once by the entry point: JSON off a terminal, console on one."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger


def configure(fmt: str = "auto", level: str = "info", fast_paths: bool = True) -> None:
    """Configures structlog (and stdlib logging, for libraries) to write to stderr.

    Args:
        fmt: "json", "console", or "auto" (console when stderr is a terminal).
        level: the minimum level name.
        fast_paths: the timestamp formatted once a second (_utc_timestamp); False:
            structlog's TimeStamper (see fastpaths.py).
    """
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console
        else structlog.processors.JSONRenderer(serializer=_dumps)
    )
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    stamp: structlog.typing.Processor = (
        _utc_timestamp if fast_paths else structlog.processors.TimeStamper(fmt="iso", utc=True))
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        stamp,
        structlog.processors.format_exc_info,
        renderer,
    ]
    wrapper = structlog.make_filtering_bound_logger(numeric)
    factory = structlog.WriteLoggerFactory(sys.stderr)
    structlog.configure(processors=processors, wrapper_class=wrapper, logger_factory=factory,
                        cache_logger_on_first_use=True)
    _route_stdlib_logging(renderer, stamp, max(numeric, logging.WARNING))
    global _rpc_lines
    _rpc_lines = None
    if fast_paths and not use_console and numeric <= logging.INFO:
        _rpc_lines = (list(processors), wrapper, factory, structlog.WriteLogger(sys.stderr).msg)


def _route_stdlib_logging(renderer: structlog.typing.Processor,
                          stamp: structlog.typing.Processor, level: int) -> None:
    """The standard library's loggers (grpc, watchdog, ...) and `warnings` write through
    the same renderer, so in JSON mode every line on stderr is JSON, with `logger` naming
    the library. (grpc's C core writes its own lines to fd 2; GRPC_VERBOSITY=NONE mutes
    them.)"""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, structlog.processors.add_log_level,
                           stamp],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)


# Every RPC writes a line, so the two costliest processors are done leaner, with the same
# output: json.dumps(obj, default=...) builds a JSONEncoder per call, and TimeStamper
# formats a whole datetime each time (together about 8 us of the line's 30).
_ENCODER = json.JSONEncoder(default=repr)


def _dumps(obj: Any, **_: Any) -> str:
    """JSONRenderer's serializer: one shared encoder; repr() for what JSON cannot hold."""
    return _ENCODER.encode(obj)


# The canonical per-RPC line (rpc/status.py) is the one line every call writes: rpc_line()
# writes it as the JSON chain above would, without structlog's generic dispatch (bound
# logger, level filter, processor loop, DropEvent handling): about half its cost.
_rpc_lines: tuple[list[Any], Any, Any, Any] | None = None
"""(the processors, wrapper class and logger factory configure() installed, a WriteLogger's
msg on the same stderr and lock), when the line may be written directly: JSON, level info
or lower, fast paths on."""


def rpc_line(method: str, code: str, duration_ms: float) -> bool:
    """Writes `log.info("rpc", method=..., code=..., duration_ms=...)` exactly as the JSON
    configuration renders it, context variables included; False (nothing written) when
    structlog is configured otherwise (console, a higher level, tests capturing logs):
    the caller then logs through structlog."""
    lines = _rpc_lines
    if lines is None:
        return False
    # capture_logs() and any later configure() change these (the list in place): step aside.
    now = structlog.get_config()
    if (now["processors"] != lines[0] or now["wrapper_class"] is not lines[1]
            or now["logger_factory"] is not lines[2]):
        return False
    event: dict[str, Any] = {"method": method, "code": code, "duration_ms": duration_ms,
                             "event": "rpc"}
    structlog.contextvars.merge_contextvars(None, "info", event)
    event["level"] = "info"
    _utc_timestamp(None, "info", event)
    lines[3](_ENCODER.encode(event))  # format_exc_info: no exc_info here, nothing to do
    return True


_second: tuple[int, str] = (-1, "")  # the last whole second seen, and its formatted prefix


def _utc_timestamp(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """`timestamp` as TimeStamper(fmt="iso", utc=True) writes it, e.g.
    2026-11-29T13:45:27.123456Z, with the date and time formatted once per second."""
    global _second
    now = time.time()
    whole = int(now)
    second, prefix = _second
    if whole != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, prefix)
    event_dict["timestamp"] = f"{prefix}.{int((now - whole) * 1e6):06d}Z"
    return event_dict
