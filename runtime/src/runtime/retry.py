"""The one way the services retry infrastructure: tenacity underneath, exponential backoff with
jitter, one warning per failed attempt, never a retry of anything but what `retry_on` accepts.

`until_done` retries for as long as it takes (a batch that must not be skipped, a connection the
service cannot work without); given `stop`, it gives up with `Stopped` as soon as the event is
set, even in the middle of a wait, so a service can shut down while its store is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

T = TypeVar("T")

log = structlog.get_logger(__name__)

RetryOn = type[BaseException] | tuple[type[BaseException], ...] | Callable[[BaseException], bool]


class Stopped(Exception):
    """`until_done` gave up because its `stop` event was set."""


def _predicate(retry_on: RetryOn) -> Callable[[BaseException], bool]:
    if isinstance(retry_on, type | tuple):
        kinds = retry_on
        return lambda exc: isinstance(exc, kinds)
    return retry_on


async def until_done(
    what: str,
    action: Callable[[], Awaitable[T]],
    *,
    retry_on: RetryOn,
    initial_s: float = 0.2,
    max_s: float = 15.0,
    stop: asyncio.Event | None = None,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """`await action()` until it succeeds; errors `retry_on` rejects propagate at once."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry()
        error = state.outcome.exception() if state.outcome else None
        log.warning("retrying", what=what, attempt=state.attempt_number,
                    retry_in_s=round(state.upcoming_sleep, 2), error=repr(error))

    async def sleep(seconds: float) -> None:
        if stop is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        if stop.is_set():
            raise Stopped(what)

    if stop is not None and stop.is_set():
        raise Stopped(what)
    async for attempt in AsyncRetrying(
        wait=wait_exponential_jitter(multiplier=initial_s, max=max_s),
        retry=retry_if_exception(_predicate(retry_on)),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    ):
        with attempt:
            return await action()
    raise AssertionError("unreachable")  # pragma: no cover
