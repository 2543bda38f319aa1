"""`manage.py bench`: load the real stack with N jobs against the fakes and print the figures."""

from __future__ import annotations

import json

from django.core.management.base import CommandError, CommandParser

from bench.report import render, render_comparison, render_scale
from bench.run import BenchConfig, BenchFailed, run, run_compare
from bench.soak import render as soak_render
from teckochecker.cli import TeckoCommand


class Command(TeckoCommand):
    help = (
        "Run web server, worker(s), beat and the fake OpenAI/Keboola servers as separate processes in "
        "a throw-away database, create N jobs, wait until all have triggered, and report poll lag, "
        "trigger latency, exactly-once, OpenAI requests, API latency, memory and CPU. "
        "See docs/BENCHMARKS.md."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jobs", type=int, default=100, help="Polling jobs to create (default 100).")
        parser.add_argument("--interval", type=int, default=30, help="Poll interval in seconds (default 30).")
        parser.add_argument(
            "--window",
            type=float,
            help="Batches finish at random over this many seconds (default 3 intervals).",
        )
        parser.add_argument(
            "--ramp", type=float, help="Create the jobs over this many seconds (default 1 interval)."
        )
        parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
        parser.add_argument("--broker", choices=["filesystem", "redis"], default="filesystem")
        parser.add_argument("--latency-ms", type=float, default=50.0, help="Fake API latency (default 50).")
        parser.add_argument("--workers", type=int, default=1, help="Celery worker processes (default 1).")
        parser.add_argument("--concurrency", type=int, default=8, help="Threads per worker (default 8).")
        parser.add_argument(
            "--timeout", type=float, help="Give up waiting for the jobs after this many seconds."
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the report as JSON instead of a table."
        )
        parser.add_argument("--keep", action="store_true", help="Keep the work directory (process logs).")
        parser.add_argument(
            "--webhooks",
            action="store_true",
            help="The fake OpenAI also sends signed batch webhooks to /api/webhooks/openai.",
        )
        parser.add_argument(
            "--compare",
            action="store_true",
            help="Run the scenario twice, polling only and then with webhooks (at the default "
            "webhook throttle), and print both side by side: deliveries refused, trigger "
            "latency, OpenAI reads.",
        )
        parser.add_argument(
            "--single-reads",
            action="store_true",
            help="Read every batch with a GET of its own (OPENAI_SWEEP=false), the way before list sweeps.",
        )
        parser.add_argument(
            "--scale",
            metavar="N,N,...",
            help="Run each of these job counts twice, with single reads and with list sweeps, and "
            "print them side by side (e.g. 1000,3000,10000). --jobs is then ignored.",
        )
        parser.add_argument(
            "--scripts",
            type=int,
            default=0,
            help="Instead of jobs: this many scripts on a one-minute cron with the scripts worker's "
            "SCRIPTS_CONCURRENCY slots; reports one run's overhead and the cron's start lag.",
        )
        parser.add_argument(
            "--minutes", type=int, default=3, help="--scripts: cron minutes measured (default 3)."
        )
        parser.add_argument(
            "--samples",
            type=int,
            default=20,
            help="--scripts: single runs timed for the overhead (default 20).",
        )
        parser.add_argument(
            "--soak",
            type=int,
            default=0,
            metavar="MINUTES",
            help="Instead of waiting for the jobs to finish: keep the N jobs active this many minutes "
            "(one more job POSTed and triggered every 2 s) and report each process's memory growth "
            "after the warm-up (see docs/BENCHMARKS.md).",
        )
        parser.add_argument(
            "--warmup",
            type=int,
            default=5,
            metavar="MINUTES",
            help="--soak: growth is measured from this minute to the end (default 5).",
        )

        parser.add_argument(
            "--live",
            type=int,
            default=0,
            metavar="N",
            help="Instead of jobs: N open streams of GET /api/events; reports change -> event "
            "latency, GET /api/jobs/{id} with and without them, and the web worker's memory and threads.",
        )

    def handle(self, *args, **options) -> None:
        if options["jobs"] < 1 or options["interval"] < 1 or options["workers"] < 1:
            raise CommandError("--jobs, --interval and --workers must be at least 1.")
        if options["scripts"] < 0 or options["minutes"] < 1 or options["samples"] < 1:
            raise CommandError("--scripts must be 0 or more, --minutes and --samples at least 1.")
        sizes = _sizes(options["scale"]) if options["scale"] else None
        if options["soak"] < 0 or (options["soak"] and not 0 <= options["warmup"] < options["soak"]):
            raise CommandError("--soak must be 0 or more and --warmup from 0 to less than --soak.")
        if options["soak"] and (options["scripts"] or options["compare"] or options["scale"]):
            raise CommandError(
                "--soak is a benchmark of its own; it goes with not with --scripts, --compare or --scale."
            )
        config = BenchConfig(
            sweeps=not options["single_reads"],
            jobs=options["jobs"],
            interval=options["interval"],
            window=options["window"],
            ramp=options["ramp"],
            db=options["db"],
            broker=options["broker"],
            latency_ms=options["latency_ms"],
            workers=options["workers"],
            concurrency=options["concurrency"],
            timeout=options["timeout"],
            webhooks=options["webhooks"],
            scripts=options["scripts"],
            minutes=options["minutes"],
            samples=options["samples"],
            soak=options["soak"],
            soak_warmup=options["warmup"],
            live=options["live"],
        )
        if options["compare"] and options["scripts"]:
            raise CommandError("--compare measures jobs; it does not go with --scripts.")
        if sizes and (options["compare"] or options["scripts"]):
            raise CommandError(
                "--scale measures jobs with and without sweeps; not with --compare or --scripts."
            )
        if sizes:
            return self._scale(config, sizes, options)
        echo = lambda m: self.stderr.write(m)  # noqa: E731
        try:
            if options["compare"]:
                reports = run_compare(config, keep=options["keep"], echo=echo)
            else:
                report = run(config, keep=options["keep"], echo=echo)
        except BenchFailed as exc:
            raise CommandError(str(exc)) from None
        if options["compare"]:
            if options["json"]:
                self.stdout.write(json.dumps(reports, indent=2))
            else:
                render(reports["polling"])
                render(reports["webhooks"])
                render_comparison(reports)
            return
        if options["soak"] and not options["json"]:
            soak_render(report)
        elif options["json"] or options["scripts"] or options["live"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            render(report)

    def _scale(self, config: BenchConfig, sizes: list[int], options) -> None:
        """Each size with single reads, then with sweeps, one after the other; one table."""
        from dataclasses import replace

        runs = []
        for jobs in sizes:
            for sweeps, way in ((False, "before"), (True, "after")):
                try:
                    report = run(
                        replace(config, jobs=jobs, sweeps=sweeps),
                        keep=options["keep"],
                        echo=lambda m: self.stderr.write(m),
                    )
                except BenchFailed as exc:
                    raise CommandError(f"{jobs} jobs, {way}: {exc}") from None
                runs.append((jobs, way, report))
        if options["json"]:
            self.stdout.write(json.dumps([{"jobs": j, "way": w, "report": r} for j, w, r in runs], indent=2))
        else:
            render_scale(runs)


def _sizes(raw: str) -> list[int]:
    try:
        sizes = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(n < 1 for n in sizes):
        raise CommandError("--scale takes job counts separated by commas, e.g. 1000,3000,10000.")
    return sizes
