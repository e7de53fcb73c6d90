"""The Open Inference Protocol (V2) beside Predict, for bench/serve.py.

Three ways a V2 caller reaches the daemon, each on the same rows as Predict dense:
- "V2 stub": ModelInfer on a bare gRPC channel, the request pre-serialized with raw FP64
  (what tritonclient puts on the wire, without its Python around it);
- "V2 tritonclient": tritonclient.grpc's InferenceServerClient.infer and as_numpy, as a
  user calls it (its request building and answer decoding count);
- "V2 REST": POST /v2/models/{name}/infer with a JSON body on a keep-alive connection
  (http.client), the answer parsed with json.

serve.py times them in its latency blocks and throughput phases; the stub's phases run in
serve.py's own caller processes (raw bytes, like Predict's), the other two in this
module's ClientPool, built the same way (spawned processes, one client per thread).
"""

from __future__ import annotations

import collections
import http.client
import json
import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeld.oip.v2 import inference_pb2 as oip

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def http_address(log: Path) -> str:
    """The daemon's V2 HTTP address, from its JSON log line `http_serving`."""
    for line in log.read_text(errors="replace").splitlines():
        if '"http_serving"' in line:
            return str(json.loads(line)["address"])
    raise RuntimeError("the daemon logged no http_serving line: was --http-listen given?")


def stub_request(model: str, block: Any) -> bytes:
    """A serialized ModelInferRequest: one raw FP64 [N, F] tensor."""
    request = oip.ModelInferRequest(model_name=model,
                                    raw_input_contents=[block.astype("<f8").tobytes()])
    request.inputs.add(name="input", datatype="FP64", shape=list(block.shape))
    return request.SerializeToString()


def rest_body(block: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "datatype": "FP64",
                                   "shape": list(block.shape),
                                   "data": block.ravel().tolist()}]}).encode()


def triton_caller(address: str, model: str, blocks: list[Any]) -> Callable[[int], object]:
    """`call(i)`: tritonclient.grpc infer of blocks[i], probabilities decoded."""
    import tritonclient.grpc as triton

    client = triton.InferenceServerClient(address)
    inputs = []
    for block in blocks:
        tensor = triton.InferInput("input", list(block.shape), "FP64")
        tensor.set_data_from_numpy(block)
        inputs.append([tensor])

    def call(i: int) -> object:
        return client.infer(model, inputs[i % len(inputs)]).as_numpy("probabilities")

    return call


def rest_caller(address: str, model: str, blocks: list[Any]) -> Callable[[int], object]:
    """`call(i)`: POST .../infer of blocks[i] as JSON on one keep-alive connection."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    bodies = [rest_body(block) for block in blocks]
    path = f"/v2/models/{model}/infer"

    def call(i: int) -> object:
        connection.request("POST", path, bodies[i % len(bodies)],
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return json.loads(body)

    return call


CALLERS: dict[str, Callable[[str, str, list[Any]], Callable[[int], object]]] = {
    "tritonclient": triton_caller, "rest": rest_caller}


def _loop(call: Callable[[int], object], begin: float, end: float, out: dict[str, Any],
          offset: int) -> None:
    i = offset
    while True:
        t0 = time.monotonic()
        error = ""
        try:
            call(i)
        except Exception as exc:
            error = type(exc).__name__
        t1 = time.monotonic()
        if t1 > end:
            return
        if t0 >= begin:
            out["calls"] += 1
            out["latencies"].append(t1 - t0)
            if error:
                out["errors"][error] += 1
        i += 1


def client_process(kind: str, address: str, threads: int, commands: Any, results: Any) -> None:
    """A caller process: `threads` clients of `kind`; a phase per command (model, blocks,
    begin, end)."""
    results.put("ready")
    while (command := commands.get()) is not None:
        model, blocks, begin, end = command
        calls = [CALLERS[kind](address, model, blocks) for _ in range(threads)]
        tallies: list[dict[str, Any]] = [
            {"calls": 0, "latencies": [], "errors": collections.Counter()} for _ in calls]
        workers = [threading.Thread(target=_loop, args=(c, begin, end, t, k), daemon=True)
                   for k, (c, t) in enumerate(zip(calls, tallies, strict=True))]
        for worker in workers:
            worker.start()
        time.sleep(max(0.0, begin - time.monotonic()))
        cpu0 = time.process_time()
        time.sleep(max(0.0, end - time.monotonic()))
        cpu = time.process_time() - cpu0
        for worker in workers:
            worker.join(timeout=15)
        errors: collections.Counter[str] = collections.Counter()
        for t in tallies:
            errors.update(t["errors"])
        results.put({"calls": sum(t["calls"] for t in tallies), "errors": dict(errors),
                     "cpu": cpu, "latencies": [x for t in tallies for x in t["latencies"]]})


class ClientPool:
    """`processes` spawned processes of `threads` clients of one kind (tritonclient, rest)."""

    def __init__(self, kind: str, address: str, processes: int, threads: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(processes)]
        self.processes = [ctx.Process(target=client_process, daemon=True,
                                      args=(kind, address, threads, q, self.results))
                          for q in self.commands]
        for process in self.processes:
            process.start()
        for _ in self.processes:
            self.results.get(timeout=120)

    def run(self, model: str, blocks: list[Any], warmup: float, seconds: float,
            daemon_cpu: Callable[[], float]) -> dict[str, Any]:
        """One phase; the daemon's CPU seconds over it are read with `daemon_cpu`."""
        begin = time.monotonic() + 2.0 + warmup  # clients connect first
        end = begin + seconds
        for q in self.commands:
            q.put((model, blocks, begin, end))
        time.sleep(max(0.0, begin - time.monotonic()))
        cpu0 = daemon_cpu()
        time.sleep(max(0.0, end - time.monotonic()))
        used = daemon_cpu() - cpu0
        parts = [self.results.get(timeout=seconds + 120) for _ in self.processes]
        errors: collections.Counter[str] = collections.Counter()
        for part in parts:
            errors.update(part["errors"])
        return {"calls": sum(p["calls"] for p in parts), "errors": dict(errors),
                "latencies": [x for p in parts for x in p["latencies"]], "daemon_cpu": used,
                "client_cpu": sum(p["cpu"] for p in parts)}

    def close(self) -> None:
        for q in self.commands:
            q.put(None)
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
