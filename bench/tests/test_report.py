"""The figures `bench.report.build` derives from what the fake and the database recorded."""

import socket
import time

import pytest

from bench import report


def _build(*, ended: float, recorded: float | None, triggered_at: float) -> dict:
    jobs = [
        {
            "id": 1,
            "created_at": 0.0,
            "batch_ids": ["a", "b"],
            "status": "completed",
            "keboola_configuration_id": "c",
            "recorded_at": recorded,
        }
    ]
    batches = {
        "a": {"requests": [1.0, 31.0], "listed": [], "terminal_at": ended - 5},
        "b": {"requests": [1.0], "listed": [33.0], "terminal_at": ended},
    }
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


def test_trigger_latency_splits_where_the_last_batch_end_was_recorded():
    built = _build(ended=25.0, recorded=33.5, triggered_at=34.5)
    assert built["trigger_latency_seconds"]["p50"] == 9.5
    split = built["trigger_latency_split_seconds"]
    assert (split["until_recorded"]["p50"], split["recorded_to_trigger"]["p50"]) == (8.5, 1.0)


def test_a_job_without_a_recorded_end_is_left_out_of_the_split():
    built = _build(ended=25.0, recorded=None, triggered_at=34.5)
    assert built["trigger_latency_seconds"]["count"] == 1
    assert built["trigger_latency_split_seconds"]["until_recorded"]["count"] == 0


def test_listen_overflows_counts_a_connection_that_a_full_backlog_dropped():
    before = report.listen_overflows()
    if before is None:
        pytest.skip("/proc/net/netstat tells no ListenOverflows here")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)  # never accepted: the second or third connection finds the queue full
    clients = []
    try:
        for _ in range(4):
            client = socket.socket()
            client.setblocking(False)
            client.connect_ex(server.getsockname())
            clients.append(client)
        deadline = time.monotonic() + 5
        while report.listen_overflows() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report.listen_overflows() > before
    finally:
        for client in clients:
            client.close()
        server.close()
