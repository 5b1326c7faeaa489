"""Apply one consumed batch durably: load, plan, publish its rejections, write.

Called by the Kafka entrypoint before it commits the batch's offsets, so a batch is committed
only once its effect is in MongoDB. Failures come in two kinds:

- infrastructure (MongoDB or Kafka unreachable, timeouts, elections): `process` raises and the
  caller retries the whole batch with backoff; redelivery is harmless (see state_machine.batch);
- anything one event causes (a value the store cannot hold, a document too large, a bug the
  input triggers): `process` finds the record by bisecting the batch, publishes it to the
  rejected topic as `unprocessable` with its position, and goes on with the others. So one bad
  event never holds up another, and none is retried without end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import structlog
from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, OperationFailure, WriteConcernError

from contracts.messages import RejectedEvent, RejectionReason, ReturnEvent
from state_machine import metrics
from state_machine.batch import BatchPlan, Delivery, decode, decode_all, plan, rejected_record
from state_machine.repository import ReadModelRepository

log = structlog.get_logger(__name__)

PublishRejections = Callable[[list[RejectedEvent]], Awaitable[None]]
RepositoryForBatch = Callable[[], Awaitable[ReadModelRepository]]

# MongoDB server errors that say "not now" rather than "not this": elections, shutdowns,
# time limits.
TRANSIENT_SERVER_CODES = frozenset({6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602,
                                    13435, 13436})
# FerretDB answers every PostgreSQL error as InternalError (code 1) and names its SQLSTATE.
# These classes say "not now": connection (08), rollback and deadlock (40), resources (53),
# operator intervention such as a restart (57), system errors (58), lock not available (55).
FERRETDB_INTERNAL_ERROR = 1
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58"})
SQLSTATE = re.compile(r"SQLSTATE ([0-9A-Z]{5})")


def is_infrastructure_error(exc: BaseException) -> bool:
    """Whether a failure is the infrastructure's (retry the batch) rather than an event's."""
    if isinstance(exc, ConnectionFailure | WriteConcernError | ExecutionTimeout | OSError):
        return True  # OSError: refused connections and timeouts (TimeoutError is one)
    if isinstance(exc, KafkaError):
        return bool(exc.retriable)
    if isinstance(exc, OperationFailure):
        if exc.code in TRANSIENT_SERVER_CODES or exc.has_error_label("RetryableWriteError"):
            return True
        state = SQLSTATE.search(str(exc))
        return (exc.code == FERRETDB_INTERNAL_ERROR and state is not None
                and state.group(1)[:2] in TRANSIENT_SQLSTATE_CLASSES)
    return False


async def no_rejections(rejections: list[RejectedEvent]) -> None:
    """For a replay: the rejections are on the rejected topic already."""


class BatchProcessor:
    def __init__(self, repository: RepositoryForBatch, publish_rejections: PublishRejections,
                 healthy: Callable[[], Awaitable[bool]] | None = None):
        self.repository_for_batch = repository
        self.publish_rejections = publish_rejections
        self.healthy = healthy

    async def process(self, deliveries: list[Delivery]) -> None:
        """Apply the batch; raise only an infrastructure error (retry it all then)."""
        try:
            await self.apply(deliveries)
        except Exception as exc:
            if is_infrastructure_error(exc):
                raise
            await self._isolate(deliveries, exc)

    async def _isolate(self, deliveries: list[Delivery], exc: Exception) -> None:
        if len(deliveries) > 1:
            half = len(deliveries) // 2
            log.warning("batch failed on its input; bisecting it", records=len(deliveries),
                        error=repr(exc))
            for part in (deliveries[:half], deliveries[half:]):
                await self.process(part)
            return
        if self.healthy is not None and not await self.healthy():
            # The store fails everything: not this event's fault. Retry the batch.
            raise ConnectionFailure(f"store unhealthy while applying a record: {exc!r}")
        (delivery,) = deliveries
        item = decode(delivery)
        event = item if isinstance(item, ReturnEvent) else None
        rejection = rejected_record(
            delivery, RejectionReason.UNPROCESSABLE, f"{type(exc).__name__}: {exc}"[:2000],
            event.shop_id if event else None, event.return_id if event else None)
        await self.publish_rejections([rejection])
        metrics.POISON.labels(type(exc).__name__).inc()
        log.error("event could not be applied; rejected as unprocessable",
                  partition=delivery.partition, offset=delivery.offset, error=repr(exc))

    async def apply(self, deliveries: list[Delivery]) -> BatchPlan:
        # Asked per batch, so a replayed read model switched in meanwhile is written from the
        # next batch on (see state_machine.replay for why that loses nothing).
        repository = await self.repository_for_batch()
        decoded = decode_all(deliveries)
        while True:
            result = plan(decoded, await repository.load(decoded))
            # Rejections are published once the history that gives them is stored and before
            # the returns are: if we die in between, the batch comes again, finds what its
            # first attempt stored, and announces its rejections (and withdrawals) again.
            if await repository.save(result, self.publish_rejections):
                break
            metrics.WRITE_CONFLICTS.inc()
            log.warning("write race lost, replanning", returns=len(result.changes))
            await asyncio.sleep(0)
        self._observe(deliveries, result)
        return result

    @staticmethod
    def _observe(deliveries: list[Delivery], result: BatchPlan) -> None:
        metrics.EVENTS_CONSUMED.inc(len(deliveries))
        metrics.REDELIVERED.inc(result.redelivered)
        for outcome, count in result.outcomes.items():
            metrics.OUTCOMES.labels(outcome.value).inc(count)
        for rejection in result.rejections:
            metrics.REJECTIONS.labels(rejection.reason.value).inc()
            log.info("event rejected" if not rejection.withdrawn else "rejection withdrawn",
                     rejection_id=rejection.rejection_id, reason=rejection.reason.value,
                     detail=rejection.detail)
