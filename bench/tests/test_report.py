"""The figures `bench.report.build` derives from what the fake recorded."""

from bench import report


def _build(batches: dict, triggered_at: float) -> dict:
    jobs = [
        {
            "id": 1,
            "created_at": 0.0,
            "batch_ids": list(batches),
            "status": "completed",
            "keboola_configuration_id": "c",
        }
    ]
    timings = {"batches": batches, "keboola_jobs": [{"config": "c", "created_at": triggered_at, "id": "k1"}]}
    return report.build(
        config={"interval": 30},
        jobs=jobs,
        timings=timings,
        api_samples={},
        api_errors={},
        processes=[],
        run={},
    )


def test_trigger_latency_splits_at_the_read_that_saw_the_last_batch_end():
    built = _build(
        {
            # Ended at 20, seen by a read at 31 (the read at 1 was before it ended).
            "a": {"requests": [1.0, 31.0], "listed": [], "terminal_at": 20.0},
            # Ended last, at 25, and first seen on a list page at 33.
            "b": {"requests": [1.0], "listed": [33.0], "terminal_at": 25.0},
        },
        triggered_at=34.5,
    )
    assert built["trigger_latency_seconds"]["p50"] == 9.5
    split = built["trigger_latency_split_seconds"]
    assert (split["until_seen"]["p50"], split["seen_to_trigger"]["p50"]) == (8.0, 1.5)


def test_a_job_triggered_before_any_read_saw_its_end_is_left_out_of_the_split():
    # A webhook confirmation's read is a read too; a trigger with no read after the end (as
    # the fake saw it) cannot be split.
    built = _build({"a": {"requests": [1.0], "listed": [], "terminal_at": 20.0}}, triggered_at=21.0)
    assert built["trigger_latency_seconds"]["count"] == 1
    assert built["trigger_latency_split_seconds"]["until_seen"]["count"] == 0
