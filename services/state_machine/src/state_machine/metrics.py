from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_CONSUMED = Counter("state_machine_events_consumed_total", "Records consumed")
OUTCOMES = Counter("state_machine_outcomes_total", "Events by what applying them did", ["outcome"])
REJECTIONS = Counter("state_machine_rejections_total", "Rejected events by reason", ["reason"])
REDELIVERED = Counter("state_machine_redelivered_total", "Records already applied, skipped")
WRITE_CONFLICTS = Counter("state_machine_write_conflicts_total", "Returns replanned after a race")
BATCH_SECONDS = Histogram("state_machine_batch_seconds", "Time to apply one consumed batch")
RETRIES = Counter("state_machine_retries_total", "Batches retried after an infrastructure error")
