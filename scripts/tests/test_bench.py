"""scripts/bench.py: the run-overhead figures come out (their size is the benchmark's business)."""

from scripts.bench import main, overhead


def test_overhead_reports_both_figures_with_and_without_the_sandbox():
    report = overhead(2)
    for key in ("sandbox", "no_sandbox"):
        figures = report[key]
        assert set(figures) == {"spawn_to_first_line", "exit_to_result"}
        for summary in figures.values():
            assert 0 < summary["p50_ms"] <= summary["p95_ms"] <= summary["max_ms"] < 60_000


def test_main_prints_a_line_per_figure(capsys):
    main(["bench", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("1 runs each, a one-line script in an empty environment; sandbox: Python ")
    assert sum("spawn_to_first_line" in line for line in lines) == 2
