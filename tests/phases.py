"""`make test` runs the suite in two phases: `--phase parallel` (everything not marked `serial`,
spread over pytest-xdist workers), then `--phase serial` (the `serial` tests, one at a time, with
nothing else running). Without `--phase` every test runs, as in a plain `pytest`.

Each phase deselects the other phase's tests after the usual selection (`-k`, `-m`, paths), so
the options of `make test PYTEST_ARGS=...` apply to both. A phase that ends up with no test is
an error (pytest's exit code 5) unless the given options left tests for the other phase only:
`make test PYTEST_ARGS="-k init"` selects no `serial` test, and that is no failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PHASES = ("parallel", "serial")
_counts = pytest.StashKey[tuple[int, int]]()  # (tests of this phase, tests of the other phase)
_skipped = pytest.StashKey[int]()  # test modules the serial phase did not import


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--phase",
        choices=PHASES,
        default=None,
        help="run only the tests of one phase of `make test`: 'serial' = marked serial, 'parallel' = the rest",
    )


def _may_hold_serial_tests(path: Path) -> bool:
    try:
        return "serial" in path.read_text(errors="replace")
    except OSError:
        return True


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The serial phase does not import a test module whose text never says "serial": importing
    and collecting the whole suite to find its few tests cost ~10 s of CPU per run, a third of it
    schemathesis building its API tests. The parallel phase checks that every `serial` test is
    in a module that says so (below), so none can fall between the two phases."""
    if (
        config.getoption("phase") == "serial"
        and collection_path.suffix == ".py"
        and collection_path.name.startswith("test_")
        and not _may_hold_serial_tests(collection_path)
    ):
        config.stash[_skipped] = config.stash.get(_skipped, 0) + 1
        return True
    return None


@pytest.hookimpl(trylast=True)  # after -k / -m / --lf have deselected theirs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    phase = config.getoption("phase")
    if phase is None:
        return
    hidden = [
        item.nodeid
        for item in items
        if item.get_closest_marker("serial") is not None and not _may_hold_serial_tests(item.path)
    ]
    if hidden:
        raise pytest.UsageError(
            f"{hidden[0]} is marked serial, but its module never says 'serial', so the serial phase "
            "would not collect it (tests/phases.py): mark it in the module itself"
        )
    want_serial = phase == "serial"
    mine = [item for item in items if (item.get_closest_marker("serial") is not None) == want_serial]
    other = [item for item in items if (item.get_closest_marker("serial") is not None) != want_serial]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = mine
    config.stash[_counts] = (len(mine), len(other))
    workeroutput = getattr(config, "workeroutput", None)  # an xdist worker: tell the controller
    if workeroutput is not None:
        workeroutput["phase_counts"] = config.stash[_counts]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # xdist controller: a worker finished
    counts = getattr(node, "workeroutput", {}).get("phase_counts")
    if counts is not None:
        node.config.stash[_counts] = tuple(counts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workeroutput") or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    mine, other = session.config.stash.get(_counts, (0, 0))
    skipped = session.config.stash.get(_skipped, 0)  # modules of the parallel phase's tests only
    if mine == 0 and (other > 0 or skipped > 0):
        phase = session.config.getoption("phase")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            elsewhere = f"{other} tests" if other else f"{skipped} modules of tests"
            reporter.write_line(
                f"phase {phase}: the given options select none of its tests ({elsewhere} in the other phase)"
            )
        session.exitstatus = pytest.ExitCode.OK
