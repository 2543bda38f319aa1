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
- each walk starts right after a batch of the key that we know stands just above the newest
  batch of its group (read before, by any job of the key: its `openai_created_at` and our
  order place it), so a walk does not page through the batches between two groups that no
  job of this sweep watches; where no such batch is known, a walk starts after the last batch
  of the group before it, and the first walk after the newest watched batch, read on its own.
  When the dispatcher sends a key's due jobs in small groups, that single read was most of a
  sweep's requests;
- a walk that has shown two pages in a row without one of its batches stops: the batches it
  has not seen lie far from the rest (a gap in the list, or a never-read batch placed by a
  wrong guess). Paging on through the gap would be one page after another; instead the
  batches left over are swept once more, each walk of that second sweep starting right above
  its own batches. What the second sweep leaves is read one by one;
- a walk whose first page is refused as a bad request (the cursor it starts after is unknown
  to OpenAI) leaves its group to single reads, as if no walk had reached it;
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

from polling.models import JobBatch, PollingJob

# Pages one walk took, on average, in this process's recent sweeps of a key (by the key's
# SHA-256): the estimate of the next sweep's cost. Starts at 1 (the watched batches together).
_pages_per_walk: dict[str, float] = {}
_stats_lock = threading.Lock()
MIN_BATCHES = 3  # fewer batches than this are always read one by one
ABOVE_LOOKUP = 5  # candidates for the batch just above a sweep's newest (one may be in the sweep)
BARREN_PAGES = 2  # pages in a row without one of its batches after which a walk stops


@dataclass
class SweepPlan:
    head: JobBatch | None  # read on its own (then the first walk starts after it), or None
    groups: list[list[JobBatch]]  # newest first; each group is one walk's batches
    starts: list[str]  # the batch id each walk starts after


def batch_states(
    reads: list[tuple[str, JobBatch]], *, for_confirmation: bool = False
) -> dict[tuple[str, str], object]:
    """The current state of each (api_key, batch): a `BatchInfo` or the outcome
    (`teckochecker.integrations`) its read raised, keyed by (api_key, batch_id). Each key's
    batches are swept from the list when that needs fewer requests; the rest are read one by
    one, all at once. Changes nothing.

    `for_confirmation`: for webhook confirmations of several jobs at once. Each job's batches
    are swept on their own: the batches of different jobs may lie anywhere in the key's list
    (those of one job were submitted together), and a sweep of batches far apart would page
    through everything between them. The requests go to the confirmations' own pool, not
    behind routine sweeps.
    """
    from polling.integrations import openai as openai_api

    by_key: dict[tuple[str, int | None], dict[str, JobBatch]] = {}
    for api_key, batch in reads:
        by_key.setdefault((api_key, batch.job_id if for_confirmation else None), {})[batch.batch_id] = batch
    answers: dict[tuple[str, str], object] = {}
    singles: list[tuple[str, str]] = []
    for (api_key, _), batches in by_key.items():
        plan = sweep_plan(api_key, list(batches.values()))
        if plan is None:
            singles.extend((api_key, batch_id) for batch_id in batches)
            continue
        result = sweep_run(api_key, plan, urgent=for_confirmation)
        # Batches a walk left far from the rest of its group: one more sweep, whose walks start
        # right above them, where that takes fewer requests than reading them one by one.
        again = sweep_plan(api_key, [batches[batch_id] for batch_id in result.far])
        if again is not None:
            second = sweep_run(api_key, again, urgent=for_confirmation)
            result.found.update(second.found)
            far = set(result.far)
            result.unread = [b for b in result.unread if b not in far] + second.unread
        answers.update({(api_key, batch_id): answer for batch_id, answer in result.found.items()})
        singles.extend((api_key, batch_id) for batch_id in result.unread)
    answers.update(openai_api.retrieve_many(singles, urgent=for_confirmation))
    return answers


def sweep_plan(api_key: str, batches: list[JobBatch]) -> SweepPlan | None:
    """How to sweep `batches` of one key, or None when single reads take fewer requests (or
    sweeps are off)."""
    from polling.integrations.openai import PAGE_SIZE

    if not settings.OPENAI_SWEEP or len(batches) < MIN_BATCHES:
        return None
    ordered = sorted(batches, key=lambda b: (b.openai_created_at or b.created_at, b.pk), reverse=True)
    secret_ids = _secret_ids(ordered)
    above = _known_above(ordered, secret_ids)
    if above is not None:
        head, rest = None, ordered
    else:
        head, rest = ordered[0], ordered[1:]
    groups = [rest[i : i + PAGE_SIZE] for i in range(0, len(rest), PAGE_SIZE)]
    with _stats_lock:
        per_walk = _pages_per_walk.get(_fingerprint(api_key), 1.0)
    expected = (1 if head else 0) + math.ceil(len(groups) * per_walk)
    if expected >= len(batches) or expected > settings.OPENAI_SWEEP_MAX_PAGES:
        return None
    starts = [above or head.batch_id] + [
        _known_above(group, secret_ids) or before[-1].batch_id
        for before, group in zip(groups, groups[1:], strict=False)
    ]
    return SweepPlan(head=head, groups=groups, starts=starts)


@dataclass
class SweepResult:
    found: dict[str, object]  # batch id -> a `BatchInfo`, or the error of the walk that should have shown it
    unread: list[str]  # for single reads: the head, and every batch no walk reached
    far: list[str]  # batches of walks that stopped barren (in `unread` too): worth a second sweep


def sweep_run(api_key: str, plan: SweepPlan, *, urgent: bool = False) -> SweepResult:
    """Walk the key's list as `plan` says."""
    from polling.integrations import openai as openai_api

    seen: set[str] = set()
    lock = threading.Lock()
    stops = [_StopRule(group, seen, lock) for group in plan.groups]
    walks = [
        openai_api.Walk(after=after, enough=stop) for after, stop in zip(plan.starts, stops, strict=True)
    ]
    openai_api.list_walks(api_key, walks, max_pages=settings.OPENAI_SWEEP_MAX_PAGES, urgent=urgent)

    listed = {info.batch_id: info for walk in walks for info in walk.batches if info.batch_id}
    result = SweepResult(found={}, unread=[plan.head.batch_id] if plan.head else [], far=[])
    for group, walk, stop in zip(plan.groups, walks, stops, strict=True):
        for batch in group:
            if batch.batch_id in listed:
                result.found[batch.batch_id] = listed[batch.batch_id]
            elif walk.error is not None and not _cursor_refused(walk):
                result.found[batch.batch_id] = walk.error
            else:
                result.unread.append(batch.batch_id)
                if stop.barren:
                    result.far.append(batch.batch_id)
    _record(api_key, [walk.pages for walk in walks if walk.error is None])
    return result


def _secret_ids(batches: list[JobBatch]) -> list[int]:
    """The OpenAI secrets of the jobs watching `batches`, as values: as a subquery over hundreds
    of job ids inside `_known_above`, PostgreSQL checked it again for every index row it
    scanned, which took minutes on a big table."""
    jobs = PollingJob.objects.filter(pk__in={b.job_id for b in batches}, openai_secret_id__isnull=False)
    return list(jobs.values_list("openai_secret_id", flat=True).distinct())


def _known_above(ordered: list[JobBatch], secret_ids: list[int]) -> str | None:
    """The id of a batch of the same key(s) (`secret_ids`) that we have read before and that
    stands just above the newest of `ordered` in OpenAI's list, or None. Only a newest batch that
    was read before is placed for sure: a never-read one is placed by when it was added to us, a
    guess that could put the batch found here below it, and the walk would then never see it."""
    newest = ordered[0]
    if newest.openai_created_at is None:
        return None
    wanted = {b.batch_id for b in ordered}
    placed = newest.openai_created_at
    of_keys = JobBatch.objects.filter(job__openai_secret_id__in=secret_ids)
    # Batches created in one second are listed in the order they were added to us (ids), which
    # is how OpenAI created them when they were submitted one after another. If not, the walk
    # misses the few batches of that second above the one found, and they are read one by one.
    # Two look-ups, each a range of the index (batch_list_place_idx): the same second after
    # the newest, then the seconds after it.
    for above in (
        of_keys.filter(openai_created_at=placed, pk__gt=newest.pk).order_by("pk"),
        of_keys.filter(openai_created_at__gt=placed).order_by("openai_created_at", "pk"),
    ):
        for batch_id in above.values_list("batch_id", flat=True)[:ABOVE_LOOKUP]:
            if batch_id not in wanted:
                return batch_id
    return None


def _cursor_refused(walk) -> bool:
    """Whether OpenAI refused the walk's first page as a bad request (not the key, not a limit or
    an outage): the batch it starts after is unknown to it, so its group is read one by one."""
    from teckochecker.integrations import CredentialsRejected, Rejected

    return (
        walk.pages == 0
        and isinstance(walk.error, Rejected)
        and not isinstance(walk.error, CredentialsRejected)
    )


class _StopRule:
    """A walk's stop rule (`Walk.enough`): every batch of its group seen (by any walk), or the
    walk has passed the oldest of them that is still unseen (so those are not in the list), or
    BARREN_PAGES pages in a row showed none of them (`barren`: those lie far from the rest)."""

    def __init__(self, group: list[JobBatch], seen: set[str], lock: threading.Lock) -> None:
        self.wanted = {b.batch_id: b.openai_created_at for b in group}
        self.seen, self.lock = seen, lock
        self.pages_without = 0
        self.barren = False

    def __call__(self, page) -> bool:
        on_page = {info.batch_id for info in page}
        with self.lock:
            found = any(batch_id in on_page for batch_id in self.wanted if batch_id not in self.seen)
            self.seen.update(on_page)
            unseen = [created for batch_id, created in self.wanted.items() if batch_id not in self.seen]
        if not unseen:
            return True
        self.pages_without = 0 if found else self.pages_without + 1
        if self.pages_without >= BARREN_PAGES:
            self.barren = True
            return True
        if any(created is None for created in unseen):
            return False  # where a never-read batch stands is a guess: keep looking
        oldest_on_page = page[-1].created_at
        return oldest_on_page is not None and oldest_on_page < min(unseen)


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
