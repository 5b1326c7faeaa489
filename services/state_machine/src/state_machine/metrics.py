from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

EVENTS_CONSUMED = Counter("state_machine_events_consumed_total", "Records consumed")
OUTCOMES = Counter("state_machine_outcomes_total", "Events by what applying them did", ["outcome"])
REJECTIONS = Counter("state_machine_rejections_total", "Rejected events by reason", ["reason"])
REDELIVERED = Counter("state_machine_redelivered_total", "Records already applied, skipped")
WRITE_CONFLICTS = Counter("state_machine_write_conflicts_total", "Returns replanned after a race")
CACHE = Counter("state_machine_cache_total",
                "Returns a batch touched, by whether the write-through cache held them", ["result"])
KNOWN_NEW = Counter("state_machine_known_new_total",
                    "Cache misses the known keys showed to be new returns: not read")
BATCH_SECONDS = Histogram("state_machine_batch_seconds", "Time to apply one consumed batch")
RETRIES = Counter("state_machine_retries_total", "Batches retried after an infrastructure error")
POISON = Counter("state_machine_poison_total",
                 "Records taken out of their batch as unprocessable, by error", ["reason"])


class Progress(Collector):
    """Seconds since each partition's last committed batch: alert when it grows while the
    consumer lag is above zero (a stall)."""

    def __init__(self) -> None:
        self.last: dict[int, float] = {}

    def committed(self, partitions: set[int]) -> None:
        now = time.monotonic()
        for partition in partitions:
            self.last[partition] = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("state_machine_seconds_since_progress",
                                   "Seconds since the partition's last committed batch",
                                   labels=["partition"])
        now = time.monotonic()
        for partition, at in sorted(self.last.items()):
            family.add_metric([str(partition)], now - at)
        yield family


PROGRESS = Progress()
REGISTRY.register(PROGRESS)
