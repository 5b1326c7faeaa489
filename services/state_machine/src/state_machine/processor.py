"""Apply one consumed batch durably: plan it, publish its rejections, write it in bulk.

Called by the Kafka entrypoint before it commits the batch's offsets, so a batch is committed
only once its effect is in MongoDB; if anything fails the batch is retried (with backoff) and,
after a crash, redelivered, which the stored offsets make harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from contracts.messages import RejectedEvent
from state_machine import metrics
from state_machine.batch import BatchPlan, Delivery, decode_all, plan, touched_keys
from state_machine.repository import ReturnsRepository

log = structlog.get_logger(__name__)

PublishRejections = Callable[[list[RejectedEvent]], Awaitable[None]]
RepositoryForBatch = Callable[[], Awaitable[ReturnsRepository]]


async def no_rejections(rejections: list[RejectedEvent]) -> None:
    """For a replay: the rejections are on the rejected topic already."""


class BatchProcessor:
    def __init__(self, repository: RepositoryForBatch, publish_rejections: PublishRejections):
        self.repository_for_batch = repository
        self.publish_rejections = publish_rejections

    async def process(self, deliveries: list[Delivery]) -> BatchPlan:
        # Asked per batch, so a replayed read model switched in meanwhile is written from the
        # next batch on (see state_machine.replay for why that loses nothing).
        repository = await self.repository_for_batch()
        decoded = decode_all(deliveries)
        keys = touched_keys(decoded)
        stored = await repository.load(keys)
        while True:
            result = plan(decoded, stored)
            # Rejections first: if we die before the write, redelivery publishes them again
            # (same ids, recorded once); the other way round they could be lost.
            await self.publish_rejections(result.rejections)
            lost = await repository.save(result.changes)
            if not lost:
                break
            metrics.WRITE_CONFLICTS.inc(len(lost))
            log.warning("write race lost, replanning", returns=len(lost))
            stored = await repository.load(keys)
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
            log.info("event rejected", rejection_id=rejection.rejection_id,
                     reason=rejection.reason.value, detail=rejection.detail)

