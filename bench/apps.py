from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The load and memory benchmark (`manage.py bench`, `make bench`)."""

    name = "bench"
    verbose_name = "Benchmark"
