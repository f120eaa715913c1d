"""When and how the client sends a request again: `RetryPolicy` and its tenacity strategies.

What is retried:

* Every request, when it certainly never reached the broker: the connection could not be made
  (`httpx.ConnectError`, `ConnectTimeout`, `PoolTimeout`, `ProxyError`).
* Idempotent requests (GET, PUT, PATCH, DELETE, append of attributes, batch upsert / update /
  delete) also after a read or write timeout, a dropped connection or a protocol error, and on an
  answer with a status in `RetryPolicy.retry_statuses` (429, 502, 503, 504).
* Non-idempotent requests (entity create, batch create, subscription create, context upload)
  only on 429 and 503, where the broker says it did not handle the request. A request that may
  have reached the broker is never sent twice: the error is raised instead.

Waits grow exponentially with full jitter up to `max_wait`; a `Retry-After` answer (seconds or
an HTTP date) is honoured, capped at `max_wait`. Retries stop after `attempts` tries or when
`max_elapsed` seconds have passed since the first.
"""

from __future__ import annotations

import email.utils
import enum
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx
import tenacity
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "RetryMode",
    "RetryPolicy",
    "async_retrying",
    "retry_after_seconds",
    "retrying",
]

_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_MAYBE_SENT = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.CloseError,
)
_NOT_HANDLED = frozenset({429, 503})


class RetryMode(enum.Enum):
    """How safe it is to send a request again."""

    IDEMPOTENT = "idempotent"
    """Sending it twice has the same effect as once."""
    NOT_SENT_ONLY = "not-sent-only"
    """Only when it certainly was not handled (a create)."""


class RetryPolicy(BaseModel):
    """How often and how long the client retries; `RetryPolicy.none()` turns retries off."""

    model_config = ConfigDict(frozen=True)

    attempts: int = Field(default=5, ge=1)
    """Tries in all, the first one included."""
    initial_wait: float = Field(default=0.25, ge=0)
    """Scale of the exponential backoff: the n-th wait is random in [0, initial_wait * 2**n]."""
    max_wait: float = Field(default=10.0, ge=0)
    """Longest single wait, also the cap on a broker's `Retry-After`."""
    max_elapsed: float | None = Field(default=60.0, gt=0)
    """No new try starts later than this many seconds after the first; None for no limit."""
    retry_statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    """Answers that mean "try again later"."""

    @classmethod
    def none(cls) -> RetryPolicy:
        """One try, no retries."""
        return cls(attempts=1)

    def should_retry(self, outcome: httpx.Response | BaseException, mode: RetryMode) -> bool:
        """Whether this outcome of a try (an answer or an httpx error) warrants another try."""
        if isinstance(outcome, httpx.Response):
            if outcome.status_code not in self.retry_statuses:
                return False
            return mode is RetryMode.IDEMPOTENT or outcome.status_code in _NOT_HANDLED
        if isinstance(outcome, _NOT_SENT):
            return True
        return mode is RetryMode.IDEMPOTENT and isinstance(outcome, _MAYBE_SENT)


def retry_after_seconds(response: httpx.Response, *, now: datetime | None = None) -> float | None:
    """The delay a `Retry-After` header asks for, in seconds (never negative), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


OnRetry = Callable[[httpx.Response | BaseException, int, float], None]
"""Called before each wait with the outcome that failed, the try number and the wait."""


def retrying(policy: RetryPolicy, mode: RetryMode, on_retry: OnRetry) -> tenacity.Retrying:
    """A synchronous tenacity controller for one request."""
    return tenacity.Retrying(sleep=time.sleep, **_strategy(policy, mode, on_retry))


def async_retrying(
    policy: RetryPolicy, mode: RetryMode, on_retry: OnRetry
) -> tenacity.AsyncRetrying:
    """An asynchronous tenacity controller for one request; waits with `anyio.sleep`."""
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    return tenacity.AsyncRetrying(sleep=sleep, **_strategy(policy, mode, on_retry))


def _strategy(policy: RetryPolicy, mode: RetryMode, on_retry: OnRetry) -> dict[str, Any]:
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(policy.attempts)
    if policy.max_elapsed is not None:
        stop = stop | tenacity.stop_after_delay(policy.max_elapsed)
    backoff = _backoff(policy)

    def should_retry(state: tenacity.RetryCallState) -> bool:
        outcome = _outcome(state)
        return outcome is not None and policy.should_retry(outcome, mode)

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = _outcome(state)
        if isinstance(outcome, httpx.Response):
            delay = retry_after_seconds(outcome)
            if delay is not None:
                return min(delay, policy.max_wait)
        return float(backoff(state))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        outcome = _outcome(state)
        if outcome is not None:
            delay = state.next_action.sleep if state.next_action is not None else 0.0
            on_retry(outcome, state.attempt_number, delay)

    def give_up(state: tenacity.RetryCallState) -> Any:
        # Out of tries: hand back the last answer, or raise the last error.
        assert state.outcome is not None
        return state.outcome.result()

    return {
        "stop": stop,
        "wait": wait,
        "retry": should_retry,
        "before_sleep": before_sleep,
        "retry_error_callback": give_up,
        "reraise": True,
    }


def _outcome(state: tenacity.RetryCallState) -> httpx.Response | BaseException | None:
    if state.outcome is None:
        return None
    if state.outcome.failed:
        return state.outcome.exception()
    result = state.outcome.result()
    return result if isinstance(result, httpx.Response) else None


def _backoff(policy: RetryPolicy) -> tenacity.wait_random_exponential:
    return tenacity.wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait)
