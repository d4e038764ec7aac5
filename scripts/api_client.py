"""Calls to the enrollment API the way an AWS SDK makes them: an answer of 429 (the API's own
throttling, which wrote nothing) is sent again after a jittered, exponentially growing pause, until
a deadline. Every other answer, error or not, is returned as it came.

Locally a client also sees 429s when more requests are in flight than EnrollmentApi's concurrency on
the emulator admits (scripts/stack.py, LOCAL_RESERVED_CONCURRENCY), as a client of the AWS stage
would above its limits.
"""

from __future__ import annotations

import random
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

THROTTLED = 429
FIRST_PAUSE_SECONDS = 0.25
LONGEST_PAUSE_SECONDS = 4.0
THROTTLE_RETRY_SECONDS = 300.0


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: bytes
    throttled: int  # how many 429s came before this answer


def send(
    request: urllib.request.Request, timeout: float, retry_throttled_for: float = THROTTLE_RETRY_SECONDS
) -> RawAnswer:
    """One request; a 429 is retried until `retry_throttled_for` seconds have passed, and then returned."""
    deadline = time.monotonic() + retry_throttled_for
    throttled = 0
    while True:
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - caller's URL
                return RawAnswer(response.status, response.read(), throttled)
        except urllib.error.HTTPError as error:
            answer = RawAnswer(error.code, error.read(), throttled)
        if answer.status != THROTTLED or time.monotonic() >= deadline:
            return answer
        throttled += 1
        # "Full jitter" (AWS Architecture Blog, Exponential Backoff And Jitter): clients that were refused
        # together do not all come back together.
        pause = random.uniform(0, min(LONGEST_PAUSE_SECONDS, FIRST_PAUSE_SECONDS * 2**throttled))  # noqa: S311
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
