"""Retrying idempotent calls on UNAVAILABLE, with jittered backoff under a total deadline.

Modelled on google api-core's ``retry_unary.py``: the sleeps grow
exponentially from ``initial`` to ``maximum`` and each is drawn uniformly from
[0, current delay] ("full jitter"), so clients that failed together do not
come back together. The whole attempt-sleep-attempt sequence lives inside one
deadline: an attempt gets only the time left, and no sleep starts that would
end past the deadline. Only UNAVAILABLE is retried: every other code is an
answer (INVALID_ARGUMENT will not get better), and DEADLINE_EXCEEDED means the
time budget is spent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

__all__ = ["RetryPolicy", "call_with_retry"]

T = TypeVar("T")

# An attempt with less time than this left would fail on its deadline anyway.
_MIN_ATTEMPT_SECONDS = 0.01


@dataclass(frozen=True)
class RetryPolicy:
    """How a retried call backs off. Which calls retry is fixed by the client.

    Attributes:
        initial: The first delay's upper bound, in seconds.
        maximum: The cap of the delay's upper bound, in seconds.
        multiplier: The growth of the upper bound after each attempt.
        max_attempts: A cap on attempts in addition to the deadline; None for none.
    """

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("RetryPolicy needs 0 < initial <= maximum")
        if self.multiplier < 1:
            raise ValueError("RetryPolicy.multiplier must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")

    def delays(self, rng: Callable[[float, float], float] = random.uniform) -> Iterator[float]:
        """The sleeps between attempts: full jitter under an exponentially growing cap.

        Args:
            rng: Draws a float in [a, b]; tests pass a deterministic one.

        Returns:
            An endless iterator of delays in seconds.
        """
        cap = self.initial
        while True:
            yield rng(0.0, cap)
            cap = min(cap * self.multiplier, self.maximum)


def call_with_retry(
    attempt: Callable[[float], T],
    policy: RetryPolicy,
    timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Calls ``attempt`` until it succeeds, fails with a non-retryable code, or time runs out.

    Args:
        attempt: Makes one call; receives the seconds left as its own deadline.
        policy: The backoff.
        timeout: The total budget in seconds, sleeps included.
        sleep: Waits between attempts (injectable for tests).
        clock: A monotonic clock (injectable for tests).

    Returns:
        What the first successful attempt returned.

    Raises:
        grpc.RpcError: The last attempt's error, when it is not retryable, the
            next sleep would cross the deadline, or max_attempts is reached.
    """
    deadline = clock() + timeout
    delays = policy.delays()
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt(max(deadline - clock(), _MIN_ATTEMPT_SECONDS))
        except grpc.RpcError as err:
            if not _retryable(err) or policy.max_attempts == attempts:
                raise
            delay = next(delays)
            # Give up rather than sleep into the deadline: the caller asked for an answer by then.
            if clock() + delay + _MIN_ATTEMPT_SECONDS > deadline:
                raise
            sleep(delay)


def _retryable(err: grpc.RpcError) -> bool:
    code = getattr(err, "code", None)
    return callable(code) and code() == grpc.StatusCode.UNAVAILABLE
