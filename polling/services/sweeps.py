"""Read the states of many batches of one OpenAI key in as few requests as we can.

OpenAI lists a key's batches newest first, 100 a page (`GET /v1/batches?after=`), each with its
status and request counts. One page can therefore stand for up to 100 single reads, if the
batches we watch are where we look. Where a batch stands in the list is known from its
`created_at`, which we record after its first read (`JobBatch.openai_created_at`); a batch read
never yet is placed by when it was added to us, which is close, as batches are added after
OpenAI created them.

A *sweep* of a key's watched batches:
- sorts them newest first and cuts them into groups of one page; each group is read by a walk
  that starts right after the last batch of the group before it, so the walks run at once and,
  when the watched batches lie together in the list, each needs one page;
- a walk stops once every batch of its group has been seen, or once it has passed the oldest of
  them (the ones not seen are then not in the list), at the end of the list, at an error, or when
  the sweep's page budget (OPENAI_SWEEP_MAX_PAGES) is spent;
- the newest watched batch is read on its own (the first walk starts after it);
- a batch no walk reached is read one by one, as before; a batch whose walk failed gets that
  failure as its answer, so the job backs off exactly as after a failed single read (429 with
  its Retry-After, 5xx, 401).

Whether to sweep at all is decided per key and per check: a sweep is used only when its
expected pages (from how many pages this process's last sweeps of the key took per walk) are
fewer than the single reads it replaces.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass

from django.conf import settings

from polling.models import JobBatch

# Pages one walk took, on average, in this process's recent sweeps of a key (by the key's
# SHA-256): the estimate of the next sweep's cost. Starts at 1 (the watched batches together).
_pages_per_walk: dict[str, float] = {}
_stats_lock = threading.Lock()
MIN_BATCHES = 3  # fewer batches than this are always read one by one


@dataclass
class SweepPlan:
    head: JobBatch  # read on its own: the first walk starts right after it
    groups: list[list[JobBatch]]  # newest first; each group is one walk's batches

    @property
    def pages(self) -> int:
        return len(self.groups)


def batch_states(reads: list[tuple[str, JobBatch]]) -> dict[tuple[str, str], object]:
    """The current state of each (api_key, batch): a `BatchInfo` or the outcome
    (`teckochecker.integrations`) its read raised, keyed by (api_key, batch_id). Each key's
    batches are swept from the list when that needs fewer requests; the rest are read one by
    one, all at once. Changes nothing."""
    from polling.integrations import openai as openai_api

    by_key: dict[str, dict[str, JobBatch]] = {}
    for api_key, batch in reads:
        by_key.setdefault(api_key, {})[batch.batch_id] = batch
    answers: dict[tuple[str, str], object] = {}
    singles: list[tuple[str, str]] = []
    for api_key, batches in by_key.items():
        plan = sweep_plan(api_key, list(batches.values()))
        if plan is None:
            singles.extend((api_key, batch_id) for batch_id in batches)
            continue
        found, unread = sweep_run(api_key, plan)
        answers.update({(api_key, batch_id): answer for batch_id, answer in found.items()})
        singles.extend((api_key, batch_id) for batch_id in unread)
    answers.update(openai_api.retrieve_many(singles))
    return answers


def sweep_plan(api_key: str, batches: list[JobBatch]) -> SweepPlan | None:
    """How to sweep `batches` of one key, or None when single reads take fewer requests (or
    sweeps are off)."""
    from polling.integrations.openai import PAGE_SIZE

    if not settings.OPENAI_SWEEP or len(batches) < MIN_BATCHES:
        return None
    ordered = sorted(batches, key=lambda b: (b.openai_created_at or b.created_at, b.pk), reverse=True)
    head, rest = ordered[0], ordered[1:]
    plan = SweepPlan(head=head, groups=[rest[i : i + PAGE_SIZE] for i in range(0, len(rest), PAGE_SIZE)])
    with _stats_lock:
        per_walk = _pages_per_walk.get(_fingerprint(api_key), 1.0)
    expected = 1 + math.ceil(plan.pages * per_walk)
    if expected >= len(batches) or expected > settings.OPENAI_SWEEP_MAX_PAGES:
        return None
    return plan


def sweep_run(api_key: str, plan: SweepPlan) -> tuple[dict[str, object], list[str]]:
    """Walk the key's list as `plan` says. Returns the answers found (a `BatchInfo`, or the
    error of the walk that should have found the batch) and the batch ids left for single
    reads (the head, and every batch no walk reached)."""
    from polling.integrations import openai as openai_api

    seen: set[str] = set()
    lock = threading.Lock()
    walks = []
    after = plan.head.batch_id
    for group in plan.groups:
        walks.append(openai_api.Walk(after=after, enough=_enough_for(group, seen, lock)))
        after = group[-1].batch_id
    openai_api.list_walks(api_key, walks, max_pages=settings.OPENAI_SWEEP_MAX_PAGES)

    listed = {info.batch_id: info for walk in walks for info in walk.batches if info.batch_id}
    found: dict[str, object] = {}
    unread = [plan.head.batch_id]
    for group, walk in zip(plan.groups, walks, strict=True):
        for batch in group:
            if batch.batch_id in listed:
                found[batch.batch_id] = listed[batch.batch_id]
            elif walk.error is not None:
                found[batch.batch_id] = walk.error
            else:
                unread.append(batch.batch_id)
    _record(api_key, [walk.pages for walk in walks if walk.error is None])
    return found, unread


def _enough_for(group: list[JobBatch], seen: set[str], lock: threading.Lock):
    """A walk's stop rule: every batch of its group seen (by any walk), or the walk has passed
    the oldest of them that is still unseen (so those are not in the list)."""
    wanted = {b.batch_id: b.openai_created_at for b in group}

    def enough(page) -> bool:
        with lock:
            seen.update(info.batch_id for info in page)
            unseen = [created for batch_id, created in wanted.items() if batch_id not in seen]
        if not unseen:
            return True
        if any(created is None for created in unseen):
            return False  # where a never-read batch stands is a guess: keep looking
        oldest_on_page = page[-1].created_at
        return oldest_on_page is not None and oldest_on_page < min(unseen)

    return enough


def _record(api_key: str, pages: list[int]) -> None:
    if not pages:
        return
    mean = sum(pages) / len(pages)
    key = _fingerprint(api_key)
    with _stats_lock:
        before = _pages_per_walk.get(key)
        _pages_per_walk[key] = mean if before is None else (before + mean) / 2


def _fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()
