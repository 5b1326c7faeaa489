"""The update-time window of a sync and where a successful sync moves the checkpoint (pure)."""

from __future__ import annotations

from dataclasses import dataclass


class WindowError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    since: int
    until: int
    # The checkpoint to record when the sync succeeds; None leaves it where it is (the window
    # does not start at or before the checkpoint, so a gap would be declared synced).
    checkpoint_after: int | None


def resolve_window(
    since: int | None,
    until: int | None,
    synced_until: int | None,
    overlap_s: int,
    now: int,
) -> Window:
    """The update-time window [since, until) of a sync and where it moves the checkpoint.

    Without `since` the sync resumes `overlap_s` before the checkpoint (0 without one); without
    `until` it ends after the current second (`now + 1`, exclusive), so a change made just
    before the user pressed Sync is included. The checkpoint only moves forward, never beyond
    that (a future `until` has fetched nothing after now), and only when the window starts at
    or before it (a window after the checkpoint leaves a gap that has not been fetched).
    Changes made later in the current second are fetched again by the next sync's overlap.
    """
    if since is None:
        since = max(0, synced_until - overlap_s) if synced_until is not None else 0
    if until is None:
        until = now + 1
    if since > until:
        raise WindowError(f"since ({since}) is after until ({until})")
    covered = synced_until if synced_until is not None else 0
    reach = min(until, now + 1)
    checkpoint_after = None
    if since <= covered and (synced_until is None or reach > synced_until):
        checkpoint_after = reach
    return Window(since, until, checkpoint_after)
