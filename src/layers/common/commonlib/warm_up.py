"""A harmless warm-up invocation: `make up` invokes every function once with `{"warmUp": true}` so that
each has a ready worker before the first real request.

`answers_warm_up` goes outermost on a Lambda handler. For exactly that event it answers at once: no
logging context, no tracing, no metrics, no fault injection, no AWS call, nothing written, nothing
raised (the emulator discards a worker whose handler raised, which would undo the warm-up). Every
other event goes to the handler unchanged.

No real event source can send that event: an API Gateway proxy event always carries `httpMethod`,
`path`, `headers`…; a Kinesis batch is `{"Records": [...]}`; a scheduled (EventBridge) event carries
`source` and `detail-type`; a hook's payload and every Step Functions task input are objects the
stack builds with fixed keys of their own (tests/unit/test_warm_up.py checks each shape). The event
must be exactly one key, `warmUp`, whose value is the JSON `true` (not `1`, not `"true"`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

WARM_UP_KEY = "warmUp"
WARM_UP_ANSWER: dict[str, Any] = {"warmUp": "ready"}


def warm_up_event() -> dict[str, Any]:
    """The event that `answers_warm_up` answers without running the handler: `{"warmUp": true}`."""
    return {WARM_UP_KEY: True}


def is_warm_up(event: Any) -> bool:
    """True only for a dict of exactly one key, `warmUp`, whose value is the boolean True."""
    return type(event) is dict and len(event) == 1 and event.get(WARM_UP_KEY) is True


def answers_warm_up[Handler: Callable[..., Any]](handler: Handler) -> Handler:
    """Answer the warm-up event with WARM_UP_ANSWER; hand every other event to `handler` as it came."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        if is_warm_up(event):
            return dict(WARM_UP_ANSWER)
        return handler(event, context, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
