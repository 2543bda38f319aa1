"""The soak's arithmetic: growth from after the warm-up to the end, per role, restarts counted."""

from bench.soak import summarize


def _sample(t, rss, pids=None):
    return {"t": t, "rss": rss, "pids": pids or dict.fromkeys(rss, 1)}


def test_growth_is_measured_from_the_first_sample_after_the_warm_up_to_the_last():
    samples = [
        _sample(0, {"web": 90.0, "worker": 120.0}),
        _sample(150, {"web": 105.0, "worker": 125.0}),  # still warming up
        _sample(300, {"web": 110.0, "worker": 126.0}),  # first sample at minute 5
        _sample(1800, {"web": 112.2, "worker": 132.3}),
    ]
    memory = summarize(samples, warmup_seconds=300)

    rows = {row["process"]: row for row in memory["rows"]}
    assert rows["web"] == {
        "process": "web",
        "start_mb": 90.0,
        "warm_mb": 110.0,
        "end_mb": 112.2,
        "max_mb": 112.2,
        "growth_percent": 2.0,
        "restarts": 0,
    }
    assert rows["worker"]["growth_percent"] == 5.0
    assert memory["warm_sample_t"] == 300 and memory["end_sample_t"] == 1800
    assert memory["total"]["warm_mb"] == 236.0 and memory["total"]["end_mb"] == 244.5
    assert memory["total"]["growth_percent"] == 3.6


def test_a_replaced_process_stays_one_row_and_counts_its_restarts():
    samples = [
        _sample(0, {"web": 90.0}, {"web": 10}),
        _sample(300, {"web": 112.0}, {"web": 10}),
        _sample(600, {"web": 95.0}, {"web": 11}),  # recycled by gunicorn --max-requests
        _sample(900, {"web": 110.0}, {"web": 12}),
    ]
    (row,) = summarize(samples, warmup_seconds=300)["rows"]
    assert row["restarts"] == 2 and row["max_mb"] == 112.0 and row["growth_percent"] == -1.8


def test_a_soak_shorter_than_the_warm_up_compares_the_last_sample_with_itself():
    samples = [_sample(0, {"web": 90.0}), _sample(30, {"web": 91.0})]
    memory = summarize(samples, warmup_seconds=300)
    assert memory["warm_sample_t"] == 30 and memory["rows"][0]["growth_percent"] == 0.0
