"""TeckoChecker: watch OpenAI batches, trigger Keboola exactly once."""

__version__ = "1.0.0"

from teckochecker.celery import app as celery_app  # noqa: E402  (Celery's Django pattern)

__all__ = ["__version__", "celery_app"]
