"""Retry policy: only reads and Train-with-request_id retry, only on UNAVAILABLE, in a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import modeld
from modeld import RetryPolicy
from modeld._retry import call_with_retry
from modeld.v1 import model_manager_pb2 as pb
from tests.unit.client_fakes import Fail, Running, after, job, running_fake

UNAVAILABLE = Fail(grpc.StatusCode.UNAVAILABLE, "daemon restarting")
FAST = RetryPolicy(initial=0.01, maximum=0.02)

# Each read, with a call that makes it and a reply that satisfies it.
READS: dict[str, tuple[Callable[[modeld.Client], Any], Any]] = {
    "GetStatus": (lambda c: c.status(), pb.GetStatusResponse()),
    "ListVersions": (lambda c: list(c.versions("spam")), pb.ListVersionsResponse()),
    "GetVersion": (lambda c: c.get_version("spam", 1), pb.Version(model="spam", version=1)),
    "GetJob": (lambda c: c.get_job("j0001"), job()),
    "ListJobs": (lambda c: list(c.list_jobs()), pb.ListJobsResponse()),
}
# Each call that must never be retried, with how to make it.
NOT_RETRIED: dict[str, Callable[[modeld.Client], Any]] = {
    "Rollback": lambda c: c.rollback("spam", 1),
    "CancelJob": lambda c: c.cancel_job("j0001"),
    "Predict": lambda c: c.predict("spam", [{"a": 1.0}]),
    "Reload": lambda c: c.reload(),
}


@pytest.fixture
def live() -> Iterator[Running]:
    with running_fake() as running:
        yield running


@pytest.fixture
def client(live: Running) -> Iterator[modeld.Client]:
    with modeld.Client(live.address, timeout=5, retry=FAST) as c:
        yield c


class FakeRpcError(grpc.RpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code


class TestRetryPolicy:
    def test_delays_use_full_jitter_under_a_growing_cap(self) -> None:
        """Each delay is drawn from [0, cap]; the cap doubles up to the maximum."""
        policy = RetryPolicy(initial=0.1, maximum=0.5, multiplier=2.0)
        bounds: list[tuple[float, float]] = []

        def rng(low: float, high: float) -> float:
            bounds.append((low, high))
            return high

        delays = policy.delays(rng)
        assert [next(delays) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
        assert all(low == 0.0 for low, _ in bounds)

    def test_invalid_policies_are_refused(self) -> None:
        """A policy that could never sleep sensibly is a ValueError at construction."""
        with pytest.raises(ValueError, match="initial <= maximum"):
            RetryPolicy(initial=1.0, maximum=0.5)
        with pytest.raises(ValueError, match="multiplier"):
            RetryPolicy(multiplier=0.5)
        with pytest.raises(ValueError, match="max_attempts"):
            RetryPolicy(max_attempts=0)


class TestCallWithRetry:
    def test_never_sleeps_past_the_deadline(self) -> None:
        """When the next sleep would cross the deadline, the last error is raised instead."""
        now = [0.0]
        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        def attempt(timeout: float) -> None:
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)

        policy = RetryPolicy(initial=1.0, maximum=1.0)
        with pytest.raises(FakeRpcError):
            call_with_retry(attempt, policy, timeout=2.5, sleep=sleep, clock=lambda: now[0])
        assert sum(slept) <= 2.5

    def test_each_attempt_gets_only_the_time_left(self) -> None:
        """The deadline is shared: the second attempt's timeout is what the first left over."""
        now = [0.0]
        timeouts: list[float] = []

        def attempt(timeout: float) -> str:
            timeouts.append(timeout)
            now[0] += 1.0
            if len(timeouts) == 1:
                raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)
            return "ok"

        def sleep(seconds: float) -> None:
            now[0] += seconds

        policy = RetryPolicy(initial=0.5, maximum=0.5)
        assert call_with_retry(attempt, policy, 10.0, sleep=sleep, clock=lambda: now[0]) == "ok"
        assert timeouts[0] == 10.0
        assert 8.5 <= timeouts[1] <= 9.0

    def test_max_attempts_caps_the_attempts(self) -> None:
        """max_attempts stops retrying even with time left."""
        attempts: list[float] = []

        def attempt(timeout: float) -> None:
            attempts.append(timeout)
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE)

        with pytest.raises(FakeRpcError):
            call_with_retry(attempt, RetryPolicy(initial=0.001, maximum=0.001, max_attempts=3),
                            10.0)
        assert len(attempts) == 3


class TestReadsRetry:
    @pytest.mark.parametrize("method", sorted(READS))
    def test_unavailable_twice_then_success_takes_three_attempts(
            self, method: str, live: Running, client: modeld.Client) -> None:
        """Every read survives two UNAVAILABLEs and succeeds on the third attempt."""
        make_call, reply = READS[method]
        live.fake.on(method, UNAVAILABLE, UNAVAILABLE, reply)
        make_call(client)
        assert live.fake.attempts(method) == 3

    def test_invalid_argument_is_not_retried(self, live: Running, client: modeld.Client) -> None:
        """INVALID_ARGUMENT is an answer: exactly one attempt, the daemon's message kept."""
        live.fake.on("GetStatus", Fail(grpc.StatusCode.INVALID_ARGUMENT, "bad model name '!'"))
        with pytest.raises(modeld.InvalidArgument) as caught:
            client.status("!")
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.message == "bad model name '!'"
        assert live.fake.attempts("GetStatus") == 1

    def test_not_found_is_not_retried(self, live: Running, client: modeld.Client) -> None:
        """NOT_FOUND is an answer too: one attempt."""
        live.fake.on("GetVersion", Fail(grpc.StatusCode.NOT_FOUND, "model 'x' not found"))
        with pytest.raises(modeld.NotFound):
            client.get_version("x")
        assert live.fake.attempts("GetVersion") == 1

    def test_gives_up_at_the_deadline_with_unavailable(self, live: Running) -> None:
        """A daemon that stays unavailable fails the call by its timeout, after several tries."""
        live.fake.on("GetStatus", UNAVAILABLE)
        started = time.monotonic()
        with modeld.Client(live.address, retry=FAST) as client, \
                pytest.raises(modeld.Unavailable) as caught:
            client.status(timeout=0.5)
        assert time.monotonic() - started < 1.5
        assert caught.value.message == "daemon restarting"
        assert live.fake.attempts("GetStatus") > 2

    def test_deadline_exceeded_is_not_retried(self, live: Running) -> None:
        """A call that runs out of time has spent its budget: DeadlineExceeded, one attempt."""
        live.fake.on("GetStatus", after(1.0, pb.GetStatusResponse()))
        with modeld.Client(live.address, retry=FAST) as client, \
                pytest.raises(modeld.DeadlineExceeded) as caught:
            client.status(timeout=0.2)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert live.fake.attempts("GetStatus") == 1

    def test_retry_none_turns_retries_off(self, live: Running) -> None:
        """Client(retry=None) makes exactly one attempt even for reads."""
        live.fake.on("GetStatus", UNAVAILABLE, pb.GetStatusResponse())
        with modeld.Client(live.address, retry=None) as client, pytest.raises(modeld.Unavailable):
            client.status()
        assert live.fake.attempts("GetStatus") == 1

    def test_every_page_of_a_listing_retries(self, live: Running, client: modeld.Client) -> None:
        """A lazy listing retries the page that failed and goes on to the next one."""
        live.fake.on("ListVersions",
                     pb.ListVersionsResponse(versions=[pb.Version(version=3)], next_page_token="t"),
                     UNAVAILABLE,
                     pb.ListVersionsResponse(versions=[pb.Version(version=2)]))
        assert [v.version for v in client.versions("spam", page_size=1)] == [3, 2]
        assert [r.page_token for r in live.fake.requests("ListVersions")] == ["", "t", "t"]


class TestTrainRetry:
    def test_train_retries_with_the_same_request_id(self, live: Running,
                                                    client: modeld.Client) -> None:
        """Train is retried on UNAVAILABLE, sending one generated request_id every time."""
        live.fake.on("Train", UNAVAILABLE, UNAVAILABLE, job("j0042"))
        handle = client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost")
        assert handle.id == "j0042"
        ids = [r.request_id for r in live.fake.requests("Train")]
        assert len(ids) == 3
        assert ids[0] and len(set(ids)) == 1

    def test_train_sends_the_callers_request_id(self, live: Running,
                                                client: modeld.Client) -> None:
        """A caller-chosen request_id is sent as is."""
        live.fake.on("Train", job())
        client.train("spam", "spambase.csv", "is_spam", algorithm="xgboost", request_id="run-7")
        assert live.fake.requests("Train")[0].request_id == "run-7"

    def test_train_invalid_argument_is_not_retried(self, live: Running,
                                                   client: modeld.Client) -> None:
        """A refused Train request fails after one attempt with the daemon's message."""
        live.fake.on("Train", Fail(grpc.StatusCode.INVALID_ARGUMENT, "unknown column 'x'"))
        with pytest.raises(modeld.InvalidArgument) as caught:
            client.train("spam", "spambase.csv", "x", algorithm="xgboost")
        assert caught.value.message == "unknown column 'x'"
        assert live.fake.attempts("Train") == 1


class TestNeverRetried:
    @pytest.mark.parametrize("method", sorted(NOT_RETRIED))
    def test_unavailable_fails_after_one_attempt(self, method: str, live: Running,
                                                 client: modeld.Client) -> None:
        """Rollback, CancelJob, Predict and Reload are tried exactly once."""
        live.fake.on(method, UNAVAILABLE)
        with pytest.raises(modeld.Unavailable) as caught:
            NOT_RETRIED[method](client)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.message == "daemon restarting"
        assert live.fake.attempts(method) == 1


class TestJobWait:
    def test_wait_reconnects_when_the_stream_drops(self, live: Running,
                                                   client: modeld.Client) -> None:
        """A stream cut by UNAVAILABLE is watched again; wait returns the final job."""
        running = job(state=pb.JOB_STATE_RUNNING, phase="cross_validation", message="fold 1/2")
        done = job(state=pb.JOB_STATE_SUCCEEDED, phase="done", version=3)
        live.fake.on("WatchJob", [running, UNAVAILABLE], [running, done])
        seen: list[str] = []
        final = client.job("j0001").wait(progress=lambda j: seen.append(j.state.value))
        assert final.state is modeld.JobState.SUCCEEDED
        assert final.version == 3
        assert seen == ["running", "running", "succeeded"]
        assert live.fake.attempts("WatchJob") == 2

    def test_wait_times_out_with_deadline_exceeded(self, live: Running,
                                                   client: modeld.Client) -> None:
        """A job that does not end within wait's timeout raises DeadlineExceeded, naming it."""
        live.fake.on("WatchJob", after(5.0, [job(state=pb.JOB_STATE_RUNNING)]))
        with pytest.raises(modeld.DeadlineExceeded) as caught:
            client.job("j0001").wait(timeout=0.3)
        assert caught.value.message == "job j0001 did not end within 0.3 s"

    def test_wait_returns_failed_jobs(self, live: Running, client: modeld.Client) -> None:
        """A failed job is returned with its error, not raised."""
        live.fake.on("WatchJob", [job(state=pb.JOB_STATE_FAILED, error="column 'x' missing")])
        final = client.job("j0001").wait()
        assert final.state is modeld.JobState.FAILED
        assert final.error == "column 'x' missing"

    def test_not_found_while_watching_is_raised(self, live: Running,
                                                client: modeld.Client) -> None:
        """An unknown job is NotFound at once, not retried."""
        live.fake.on("WatchJob", Fail(grpc.StatusCode.NOT_FOUND, "job 'j9' not found"))
        with pytest.raises(modeld.NotFound):
            client.job("j9").wait()
        assert live.fake.attempts("WatchJob") == 1
