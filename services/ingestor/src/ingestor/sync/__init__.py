"""Sync Return: pull new or changed returns of a shop from TikTok Shop into the events topic.

A `SyncCommand` (from the query API, the CLI or the periodic reconciler) arrives on
SYNC_COMMANDS_TOPIC, keyed by shop id: every command of one shop lands on one partition and is
received by one consumer, in order. For each command the ingestor

1. records the job in `sync_jobs` (queued; a redelivered command whose job already succeeded or
   failed is acknowledged and not run again), claims it (`owner`, `heartbeat_at`) and hands it
   to the runner, which runs up to SYNC_CONCURRENCY shops' syncs at once, each shop's in order;
2. takes the shop's lease on its `sync_checkpoints` document (a find_one_and_update with an
   expiry, renewed while the sync runs), so two processes never sync one shop at once. A
   second command of the same shop, queued behind the first on the same partition, therefore
   starts after it and resumes from the checkpoint the first one left;
3. resolves the window (`resolve_window`): `since` = the command's, else the checkpoint's
   `synced_until` minus SYNC_OVERLAP_SECONDS, else 0; `until` = the command's, else the end of
   the current second (now + 1, exclusive);
4. pages through TikTok (`TikTokShopClient.iter_returns`): every mapped `ReturnEvent` goes to
   EVENTS_TOPIC (key shop:return), every record that cannot be mapped to REJECTED_TOPIC as a
   `RejectedEvent` with a deterministic id; each page is one batch acknowledged by Kafka
   (acks=all) before the next page is fetched, and its counts are written to the job;
5. only when every page is published, advances the checkpoint (and releases the lease in the
   same write), then marks the job succeeded. A sync that fails or dies half way leaves the
   checkpoint where it was: its job stays running (crash) or says failed, and the next sync
   fetches the same window again. Events published twice are deduplicated downstream (their
   identity is shop, return, status, update_time).

The Kafka offset of a command is committed (manual ack) once its job is recorded and claimed;
from then on the job document keeps it. A process that crashes mid-sync stops its jobs'
heartbeat: after SYNC_JOB_STALE_SECONDS an ingestor's recovery scan takes the job over, waits
for the dead process's lease to expire and runs the sync again (`runner.py`).

Also here: webhook enrichment (a legacy webhook carries no amounts or items: the return is
fetched in the background and published as a sync snapshot) and the periodic reconciler.

Modules: `window` (the window, pure), `job` (counts, failure text, store retries), `clients`
(where a shop's TikTok client comes from), `lease` (the shop's lease and its heartbeat),
`consumer` (the sync-command subscriber), `service` (one command run, and the wiring), `enrichment`,
`reconciler`. The documents are read and written through `runtime.sync_jobs.SyncJobs`.
"""

from ingestor.sync.clients import ShopClients
from ingestor.sync.job import Counts, SyncFailed, api_error_text
from ingestor.sync.service import SyncService
from ingestor.sync.window import Window, WindowError, resolve_window

__all__ = [
    "Counts",
    "ShopClients",
    "SyncFailed",
    "SyncService",
    "Window",
    "WindowError",
    "api_error_text",
    "resolve_window",
]
