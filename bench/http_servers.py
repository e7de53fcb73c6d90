"""Which HTTP server carries V2 REST: the standard library's ThreadingHTTPServer (what the
daemon runs) or uvicorn (httptools, uvloop) with a minimal ASGI app, around the same OipHttp.

A daemon trains spambase's xgboost model once. Then, for each server kind in turn, a
server process builds a ModelService on that registry (the daemon's own core: nothing
else differs) and serves OipHttp on 127.0.0.1; 16 REST callers (serve_oip.ClientPool:
4 processes x 4 threads, a keep-alive connection each) send JSON infer requests, 1-row
and 100-row phases. The kinds alternate over --rounds, so load from elsewhere hits them
alike. Kinds:
  stdlib           ThreadingHTTPServer, HTTP/1.1 keep-alive, a thread per connection;
  uvicorn          uvicorn + httptools + uvloop, OipHttp called inline in the event loop;
  uvicorn-threads  the same, OipHttp called in the loop's default thread pool.

uvicorn, httptools and uvloop are not modeld dependencies (the daemon runs the standard
library's server, see bench/README.md); install them to run this comparison.

Run:  .venv/bin/pip install uvicorn==0.54.0 httptools==0.9.0 uvloop==0.23.0
      .venv/bin/python bench/http_servers.py [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import serve_oip
from _common import (
    SPAMBASE,
    cpu_seconds,
    git_commit,
    load_note,
    percentile,
    running_daemon,
    scratch_folder,
    train_and_wait,
)

from modeld.v1 import model_manager_pb2 as pb

MODEL = "bench-xgboost"
KINDS = ("stdlib", "uvicorn", "uvicorn-threads")


def asgi_app(app: Any, threads: bool) -> Any:
    """OipHttp as an ASGI application."""
    from modeld_server.rpc.oip_http import Request

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        path = scope.get("raw_path") or scope["path"].encode()
        request = Request(scope["method"], path.decode("latin-1"), headers, body)
        reply = (await asyncio.to_thread(app.handle, request) if threads
                 else app.handle(request))
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(k.encode(), v.encode()) for k, v in reply.headers]
                    + [(b"content-length", str(len(reply.body)).encode())]})
        await send({"type": "http.response.body", "body": reply.body})

    return asgi


def serve(kind: str, base: Path, port_file: Path) -> None:
    """The server process: the daemon's core on `base`'s registry, behind `kind`."""
    import structlog

    from modeld_server.compose import build_service
    from modeld_server.config import Settings
    from modeld_server.oip.core import OpenInference
    from modeld_server.rpc.http_server import serve_http
    from modeld_server.rpc.oip_http import OipHttp

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    settings = Settings(registry=base / "registry", data_root=base / "data",
                        state_dir=base / "state-http")
    service = build_service(settings)
    service.start(background=False)  # models only: no watcher, schedules or drift thread
    core = OpenInference(service)
    core.serving = True
    app = OipHttp(core)
    if kind == "stdlib":
        server = serve_http(app, "127.0.0.1:0", settings)
        port_file.write_text(str(server.server_address[1]))
        while True:
            time.sleep(3600)
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port_file.write_text(str(sock.getsockname()[1]))
    config = uvicorn.Config(asgi_app(app, kind == "uvicorn-threads"), loop="uvloop",
                            http="httptools", log_level="error", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def rows(base: Path) -> tuple[list[Any], list[Any]]:
    import numpy as np
    import pandas as pd

    folder = base / "registry" / MODEL / "versions" / "1"
    columns = json.loads((folder / "manifest.json").read_text())["schema"]["numeric"]
    matrix = pd.read_csv(SPAMBASE)[columns].to_numpy(dtype=np.float64)
    return [matrix[i:i + 1] for i in range(64)], [matrix[i * 100:(i + 1) * 100] for i in range(8)]


def phase(kind: str, base: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    port_file = base / f"port-{kind}"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, str(base),
                                str(port_file)])
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} server did not start")
            time.sleep(0.05)
        address = f"127.0.0.1:{port_file.read_text()}"
        one, hundred = rows(base)
        pool = serve_oip.ClientPool("rest", address, 4, 4)
        out = []
        try:
            for blocks, n in ((one, 1), (hundred, 100)):
                got = pool.run(MODEL, blocks, args.warmup, args.seconds,
                               lambda: cpu_seconds(process.pid))
                got.update(kind=kind, rows=n)
                out.append(got)
        finally:
            pool.close()
        return out
    finally:
        process.terminate()
        process.wait(30)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(f"V2 REST server choice; commit {git_commit()}; {os.cpu_count()} CPUs")
    print(f"before: {load_note()}", flush=True)
    with scratch_folder("modeld-bench-http-", args.keep) as base:
        (base / "data").mkdir()
        shutil.copy(SPAMBASE, base / "data" / "spambase.csv")
        with running_daemon(base) as daemon:
            train_and_wait(daemon.stub, pb.TrainRequest(
                model=MODEL, algorithm="xgboost", cv_folds=2,
                dataset=pb.Dataset(path="spambase.csv", target="is_spam")))
        results: list[dict[str, Any]] = []
        for _ in range(args.rounds):
            for kind in KINDS:
                results.extend(phase(kind, base, args))
                print(f"  {kind}: {results[-2]['calls'] / args.seconds:,.0f} calls/s (1 row), "
                      f"{100 * results[-1]['calls'] / args.seconds:,.0f} rows/s (100 rows)",
                      flush=True)
        print(f"after: {load_note()}")
    print(f"\n16 REST callers, JSON, {args.seconds:g} s phases, {args.rounds} rounds (sums):")
    print(f"  {'server':<16} {'1-row calls/s':>14} {'p50 ms':>7} {'100-row rows/s':>15} "
          f"{'p50 ms':>7} {'server CPU ms/call (1, 100)':>28} {'failed':>7}")
    for kind in KINDS:
        mine = [r for r in results if r["kind"] == kind]
        one = [r for r in mine if r["rows"] == 1]
        hundred = [r for r in mine if r["rows"] == 100]
        seconds = args.seconds * args.rounds

        def cpu(parts: list[dict[str, Any]]) -> float:
            return 1000 * sum(p["daemon_cpu"] for p in parts) / max(1, sum(p["calls"]
                                                                          for p in parts))

        print(f"  {kind:<16} {sum(r['calls'] for r in one) / seconds:>14,.0f} "
              f"{1000 * percentile([x for r in one for x in r['latencies']], 50):>7.2f} "
              f"{100 * sum(r['calls'] for r in hundred) / seconds:>15,.0f} "
              f"{1000 * percentile([x for r in hundred for x in r['latencies']], 50):>7.2f} "
              f"{cpu(one):>13.3f}, {cpu(hundred):>12.3f} "
              f"{sum(sum(r['errors'].values()) for r in mine):>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
