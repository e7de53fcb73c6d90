"""The daemon's settings: one frozen object, read from flags, then MODELD_* env, then defaults.

Nothing outside this module reads os.environ.
"""

from __future__ import annotations

import argparse
import functools
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


def _f(default: object, help_text: str) -> Any:
    """A settings field whose help text serves both --help and the docs."""
    return field(default=default, metadata={"help": help_text})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the daemon can be told. Each field maps to a --flag and a MODELD_* variable."""

    listen: str = _f("127.0.0.1:50051", "host:port to serve gRPC on; port 0 picks a free port.")
    registry: Path = _f(Path("var/registry"),
                        "Root folder of the file registry (created if missing).")
    data_root: Path = _f(Path("var/data"),
                         "Datasets in TrainRequest.dataset.path resolve under it.")
    state_dir: Path = _f(
        Path("var/state"), "This daemon's own state (job records); one per replica."
    )
    training: bool = _f(
        True, "Train here. --no-training: a serve-only replica that never starts the training "
        "forkserver and refuses Train and SetSchedule (FAILED_PRECONDITION); another "
        "daemon on the same registry trains."
    )
    max_concurrent_jobs: int = _f(1, "Training jobs that run at once, each in its own process.")
    max_queued_jobs: int = _f(16, "Jobs that may wait for a slot; beyond: RESOURCE_EXHAUSTED.")
    rpc_threads: int = _f(32, "Threads serving RPCs (an open WatchJob stream holds one).")
    poll_interval: float = _f(2.0, "Seconds between safety-net registry re-scans; 0 disables.")
    watch: bool = _f(True, "Follow the registry with file-system events.")
    fast_paths: bool = _f(
        True, "Take the fast paths that re-implement library internals (hand-decoded Predict "
        "records, XGBoost's C predict, folded logistic regression, row hashing, log and metric "
        "caches); off: the libraries' own paths, for checking a library upgrade."
    )
    keep_loaded: int = _f(2, "Previously active versions kept loaded per model for Rollback.")
    keep_versions: int = _f(
        20, "Newest versions kept per model; the active, previously active, aliased and loaded "
        "ones (--keep-loaded) are kept beyond this number; 0 keeps all."
    )
    grace_period: float = _f(10.0, "Seconds in-flight RPCs get to finish on SIGTERM.")
    max_predict_rows: int = _f(100_000, "Rows one Predict may carry; more: RESOURCE_EXHAUSTED.")
    max_message_bytes: int = _f(64 * 1024 * 1024, "Largest gRPC message received or sent.")
    port_file: Path | None = _f(None, "Write the bound port here once serving (for scripts).")
    token_file: Path | None = _f(
        None, "File of 'ROLE TOKEN' lines (roles: reader, operator); unset: no authentication."
    )
    allow_unauthenticated_network: bool = _f(
        False, "Without a token file, listen on a non-loopback address anyway."
    )
    open_health: bool = _f(True, "Health and reflection need no token.")
    tls_cert: Path | None = _f(None, "PEM server certificate (chain); enables TLS with --tls-key.")
    tls_key: Path | None = _f(None, "PEM private key of --tls-cert.")
    tls_client_ca: Path | None = _f(None, "PEM CA bundle; clients must present a cert it signed.")
    metrics_listen: str = _f("", "host:port for Prometheus /metrics over HTTP; empty: off.")
    http_listen: str = _f(
        "", "host:port for the Open Inference Protocol (V2) over HTTP/JSON, with the same "
        "tokens and TLS as gRPC; empty: off."
    )
    max_dataset_bytes: int = _f(1 << 30, "Largest dataset Train accepts: its file, and its "
                                "bytes once decompressed (which the job checks).")
    max_dataset_rows: int = _f(10_000_000, "Most rows a training dataset may have.")
    train_timeout: float = _f(3600.0, "Seconds a training job may run before it is killed.")
    train_memory_mb: int = _f(
        8192, "Memory (MiB, proportional set size) a training job's processes may use together."
    )
    job_cpus: int = _f(
        0, "Fits one job may run at once (folds side by side, for single-threaded "
        "estimators); 0: every CPU, 1: one after another."
    )
    monitor_sample: float = _f(
        0.1, "Share of Predict rows (of the active versions) copied for drift monitoring; "
        "0 turns monitoring off."
    )
    monitor_window: int = _f(5000, "Sampled rows per drift window (windows tumble).")
    monitor_window_seconds: float = _f(
        300.0, "A drift window holding at least a tenth of --monitor-window rows closes after "
        "this many seconds; 0: windows close by rows only."
    )
    monitor_buffer: int = _f(
        20_000, "Sampled rows a model's buffer holds until the drift thread takes them; "
        "beyond, rows are dropped (and counted), never waited for."
    )
    monitor_interval: float = _f(5.0, "Seconds between drift computations; 0: none "
                                 "(tests step the monitor by hand).")
    replica: str = _f("", "This daemon's name in GetDrift; empty: the host name.")
    dask_scheduler: str = _f(
        "", "Address of a Dask scheduler (tcp://host:8786) for TrainRequest.engine=dask; "
        "empty: none. Dask is imported only when this or --dask-local is set."
    )
    dask_local: int = _f(
        0, "Start a Dask LocalCluster of N worker processes for engine=dask, on the first "
        "such job, closed with the daemon; 0: none. Excludes --dask-scheduler."
    )
    log_format: str = _f("auto", "auto (JSON unless on a terminal), json or console.")
    log_level: str = _f("info", "debug, info, warning or error.")


_ENV_PREFIX = "MODELD_"
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@functools.cache
def _types() -> dict[str, Any]:
    """Each Settings field's type (typing.get_type_hints, so `Path | None` is the type, not
    the annotation's text), with an optional one (`X | None`) as X."""
    out = {}
    for name, hint in typing.get_type_hints(Settings).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out[name] = args[0] if isinstance(hint, types.UnionType) and len(args) == 1 else hint
    return out


def _coerce(name: str, kind: object, raw: str) -> object:
    """Turns a flag or environment string into the field's type (see _types); an empty
    string is None for a Path."""
    if kind is bool:
        low = raw.strip().lower()
        if low in _BOOL_TRUE:
            return True
        if low in _BOOL_FALSE:
            return False
        raise ValueError(f"{name}: expected a boolean, got {raw!r}")
    if kind is int:
        return int(raw)
    if kind is float:
        return float(raw)
    if kind is Path:
        return Path(raw) if raw else None
    return raw


class _Switch(argparse.Action):
    """A boolean flag: `--watch` / `--no-watch`, no value needed. `--watch false` still parses,
    so existing scripts keep working; the value goes through _coerce like the environment's."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        negated = ["--no-" + s[2:] for s in option_strings if s.startswith("--")]
        super().__init__([*option_strings, *negated], dest, nargs="?", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        if option_string is not None and option_string.startswith("--no-"):
            if values is not None:
                parser.error(f"{option_string} takes no value, got {values!r}")
            values = "false"
        setattr(namespace, self.dest, "true" if values is None else values)


class _HelpFormatter(argparse.HelpFormatter):
    """Flags in one column, switches as `--watch, --no-watch` (no metavar)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)

    def _format_action_invocation(self, action: argparse.Action) -> str:
        if isinstance(action, _Switch):
            return ", ".join(action.option_strings)
        return super()._format_action_invocation(action)


_METAVARS: dict[object, str] = {int: "N", float: "SECONDS", Path: "PATH"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeld serve", usage="modeld serve [flags]", formatter_class=_HelpFormatter,
        description="Run the modeld daemon until SIGTERM or SIGINT. Each flag also reads a "
                    f"{_ENV_PREFIX}* variable; precedence: flag > environment > default.")
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        default = "unset" if f.default is None else str(f.default).lower() if isinstance(
            f.default, bool) else f.default
        help_text = f"{f.metadata['help']} [env {_ENV_PREFIX}{f.name.upper()}; default {default}]"
        help_text = help_text.replace("%", "%%")
        if _types()[f.name] is bool:
            parser.add_argument(flag, dest=f.name, default=None, action=_Switch, help=help_text)
        else:
            metavar = "HOST:PORT" if f.name.endswith("listen") else _METAVARS.get(
                _types()[f.name], f.name.upper())
            parser.add_argument(flag, dest=f.name, default=None, metavar=metavar, help=help_text)
    return parser


def load_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Builds Settings with precedence flag > MODELD_* environment > default.

    Args:
        argv: the arguments after `modeld serve`.
        env: the environment; os.environ when None.

    Returns:
        The frozen settings.

    Raises:
        SystemExit: on an unknown flag or a value of the wrong type (argparse style, exit 2).
    """
    env = os.environ if env is None else env
    parser = _parser()
    args = parser.parse_args(list(argv))
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name)
        if raw is None:
            raw = env.get(_ENV_PREFIX + f.name.upper())
        if raw is None:
            continue
        try:
            values[f.name] = _coerce(f.name, _types()[f.name], raw)
        except ValueError as exc:
            parser.error(f"--{f.name.replace('_', '-')}: {exc}")
    settings = Settings(**values)  # type: ignore[arg-type]
    _validate(settings, parser)
    return settings


def _validate(s: Settings, parser: argparse.ArgumentParser) -> None:
    if s.max_concurrent_jobs < 1:
        parser.error(f"--max-concurrent-jobs must be >= 1, got {s.max_concurrent_jobs}")
    if s.max_queued_jobs < 0:
        parser.error(f"--max-queued-jobs must be >= 0, got {s.max_queued_jobs}")
    if s.poll_interval < 0:
        parser.error(f"--poll-interval must be >= 0, got {s.poll_interval}")
    if s.keep_versions < 0:
        parser.error(f"--keep-versions must be >= 0, got {s.keep_versions}")
    if s.keep_loaded < 0:
        parser.error(f"--keep-loaded must be >= 0, got {s.keep_loaded}")
    if s.job_cpus < 0:
        parser.error(f"--job-cpus must be >= 0, got {s.job_cpus}")
    if not 0 <= s.monitor_sample <= 1:  # NaN fails too
        parser.error(f"--monitor-sample must be between 0 and 1, got {s.monitor_sample}")
    if not s.monitor_window_seconds >= 0:
        parser.error(f"--monitor-window-seconds must be >= 0, got {s.monitor_window_seconds}")
    if s.monitor_window < 1 or s.monitor_buffer < 1 or not s.monitor_interval >= 0:
        parser.error("--monitor-window and --monitor-buffer must be >= 1 and "
                     f"--monitor-interval >= 0, got {s.monitor_window}, {s.monitor_buffer}, "
                     f"{s.monitor_interval}")
    if s.dask_local < 0:
        parser.error(f"--dask-local must be >= 0, got {s.dask_local}")
    if s.dask_local and s.dask_scheduler:
        parser.error("--dask-scheduler and --dask-local exclude each other: give one")
    if (s.tls_cert is None) != (s.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if s.tls_client_ca is not None and s.tls_cert is None:
        parser.error("--tls-client-ca needs --tls-cert and --tls-key")
    for name in ("max_dataset_bytes", "max_dataset_rows", "train_timeout", "train_memory_mb",
                 "max_predict_rows", "max_message_bytes", "rpc_threads"):
        if getattr(s, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(s, name)}")
    _check_listen("--listen", s.listen, parser, required=True)
    _check_listen("--metrics-listen", s.metrics_listen, parser, required=False)
    _check_listen("--http-listen", s.http_listen, parser, required=False)
    if s.log_format not in ("auto", "json", "console"):
        parser.error(f"--log-format must be auto, json or console, got {s.log_format!r}")


def _check_listen(flag: str, value: str, parser: argparse.ArgumentParser, *,
                  required: bool) -> None:
    """HOST:PORT with a port in 0-65535: grpc would take 70000 modulo 65536 without a word."""
    if not value and not required:
        return
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        parser.error(f"{flag} must be HOST:PORT (e.g. 127.0.0.1:50051), got {value!r}")
    if int(port) > 65535:
        parser.error(f"{flag}: port {int(port)} is out of range 0-65535 in {value!r}")
