"""When the state machine's consumer fetches: while it keeps up, as a batch starts, never while
one is applied; while it is behind, ahead, all the time.

aiokafka prefetches in the background, and once a partition holds fetched records it fetches
that partition no more until they are consumed. While a batch is applied, the first records to
arrive are fetched and held, and every later one of their partitions stays at the broker until
the batch after next. Timed at 200 webhooks/s on 20,000 returns, the newest record of a batch
was already 99 ms old (p50) as the batch began, its oldest 295 ms (p99 1.4 s), for batches
applied in 142 ms. Paused while a batch is applied, the consumer fetches everything there is
as the next batch begins, one fetch later.

A full batch says the consumer is behind: there, fetching ahead keeps the next batches full.
Paused then too, the state machine folded 824 events/s instead of 956
(`python -m bench.state_machine_throughput --events 60000 --returns 12000`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from aiokafka import AIOKafkaConsumer


@contextmanager
def fetching_paused(consumer: AIOKafkaConsumer) -> Iterator[None]:
    """No fetching from the consumer's partitions inside. Pausing only stops the fetches: a
    partition's position does not move, so nothing is skipped."""
    consumer.pause(*consumer.assignment())
    try:
        yield
    finally:  # a rebalance meanwhile may have taken some: resume what is still ours
        consumer.resume(*consumer.paused())


def while_applying(consumer: AIOKafkaConsumer, records: int,
                   max_records: int) -> AbstractContextManager[None]:
    """How the consumer fetches while a batch of `records` is applied."""
    return fetching_paused(consumer) if records < max_records else nullcontext()
