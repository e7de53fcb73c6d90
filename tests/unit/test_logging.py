"""The JSON log lines: the fast timestamp and serializer write what structlog's own would."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from modeld_server import logging as modeld_logging


class TestTimestamp:
    def test_the_format_is_iso_utc_with_microseconds_and_z(self) -> None:
        stamped = modeld_logging._utc_timestamp(None, "info", {})["timestamp"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamped)

    def test_it_is_the_time_now(self) -> None:
        before = datetime.datetime.now(tz=datetime.UTC)
        stamped = modeld_logging._utc_timestamp(None, "info", {})["timestamp"]
        after = datetime.datetime.now(tz=datetime.UTC)
        parsed = datetime.datetime.fromisoformat(stamped.replace("Z", "+00:00"))
        assert before - datetime.timedelta(microseconds=1) <= parsed <= after

    def test_a_new_second_gets_a_new_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The cached date and time are rebuilt when the second changes."""
        for now, expected in ((86399.25, "1970-01-01T23:59:59.250000Z"),
                              (86400.5, "1970-01-02T00:00:00.500000Z")):
            monkeypatch.setattr(time, "time", lambda now=now: now)
            assert modeld_logging._utc_timestamp(None, "info", {})["timestamp"] == expected


def test_values_json_cannot_hold_are_written_with_repr() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<odd>"

    line: Any = json.loads(modeld_logging._dumps({"event": "x", "value": Odd(), "n": 1.5},
                                                 default=None))
    assert line == {"event": "x", "value": "<odd>", "n": 1.5}


class TestStandardLibraryLoggers:
    def test_every_line_is_json_in_json_mode(self) -> None:
        """A library's logging call and a Python warning come out as JSON lines too."""
        code = (
            "import logging, warnings, structlog\n"
            "from modeld_server import logging as modeld_logging\n"
            "modeld_logging.configure('json', 'info')\n"
            "structlog.get_logger('modeld').info('ours', n=1)\n"
            "logging.getLogger('grpc._server').warning('a %s from grpc', 'warning')\n"
            "logging.getLogger('watchdog').info('below the level: not shown')\n"
            "warnings.warn('Callback with id 3 is gone', RuntimeWarning)\n"
            "try:\n"
            "    1 / 0\n"
            "except ZeroDivisionError:\n"
            "    logging.getLogger('third.party').exception('it failed')\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, check=True)
        lines = [json.loads(line) for line in result.stderr.splitlines()]
        assert [(x["event"], x["level"], x.get("logger")) for x in lines] == [
            ("ours", "info", None),
            ("a warning from grpc", "warning", "grpc._server"),
            (lines[2]["event"], "warning", "py.warnings"),
            ("it failed", "error", "third.party"),
        ]
        assert "RuntimeWarning: Callback with id 3 is gone" in lines[2]["event"]
        assert "ZeroDivisionError: division by zero" in lines[3]["exception"]
        assert all(re.fullmatch(r"\d{4}-.*Z", x["timestamp"]) for x in lines)


def test_watchdogs_warning_of_a_replaced_callback_stays_out_of_the_log() -> None:
    """watchdog warns when a renamed watched folder's watch is added again (a version
    published from staging): the daemon drops that one warning, from watchdog only."""
    text = "Callback with id '1403' already exists for watch <Watch(wd=3)>. It will be Overwritten."
    code = (
        "import warnings\n"
        "from modeld_server import logging as modeld_logging\n"
        "import modeld_server.serving.watcher\n"
        "modeld_logging.configure('json', 'info')\n"
        f"warnings.warn_explicit({text!r}, RuntimeWarning, 'inotify.py', 365,\n"
        "                      module='watchdog.observers.inotify')\n"
        f"warnings.warn_explicit({text!r}, RuntimeWarning, 'other.py', 1, module='other')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=True)
    [line] = [json.loads(line) for line in result.stderr.splitlines()]
    assert line["logger"] == "py.warnings" and "other.py:1" in line["event"]


class TestRpcLine:
    """rpc_line writes the canonical per-RPC line as structlog's JSON chain does, byte for byte,
    and steps aside whenever structlog is configured otherwise."""

    def test_the_line_equals_structlogs_own(self) -> None:
        code = (
            "import sys, time, structlog\n"
            "from modeld_server import logging as modeld_logging\n"
            "modeld_logging.configure('json', 'info')\n"
            "time.time = lambda: 86400.5\n"
            "structlog.contextvars.bind_contextvars(model='spam', job_id='j\\u00e91')\n"
            "kw = dict(method='Predict', code='OK', duration_ms=0.123)\n"
            "structlog.get_logger('modeld_server.rpc').info('rpc', **kw)\n"
            "assert modeld_logging.rpc_line(**kw)\n"
            "structlog.contextvars.clear_contextvars()\n"
            "structlog.get_logger('modeld_server.rpc').info('rpc', **kw)\n"
            "assert modeld_logging.rpc_line(**kw)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, check=True)
        library, fast, library_bare, fast_bare = result.stderr.splitlines()
        assert fast == library and fast_bare == library_bare
        assert json.loads(fast)["model"] == "spam" and "model" not in json.loads(fast_bare)

    @pytest.mark.parametrize("fmt,level,fast_paths", [("console", "info", True),
                                                      ("json", "warning", True),
                                                      ("json", "info", False)])
    def test_it_writes_nothing_when_the_line_would_differ(self, fmt: str, level: str,
                                                          fast_paths: bool) -> None:
        code = (
            "from modeld_server import logging as modeld_logging\n"
            f"modeld_logging.configure({fmt!r}, {level!r}, {fast_paths})\n"
            "assert not modeld_logging.rpc_line('Predict', 'OK', 0.1)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, check=True)
        assert result.stderr == ""

    def test_captured_logs_get_the_line_through_structlog(self) -> None:
        """structlog.testing.capture_logs swaps the processors: rpc_line steps aside.
        (In a subprocess: configure() is process-wide, and other tests rely on the default.)"""
        code = (
            "import structlog\n"
            "from modeld_server import logging as modeld_logging\n"
            "modeld_logging.configure('json', 'info')\n"
            "with structlog.testing.capture_logs() as logs:\n"
            "    assert not modeld_logging.rpc_line('Predict', 'OK', 0.1)\n"
            "assert logs == []\n"
            "assert modeld_logging.rpc_line('Predict', 'OK', 0.1)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, check=True)
        [line] = result.stderr.splitlines()
        assert json.loads(line)["event"] == "rpc"
