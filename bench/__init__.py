"""The load benchmark behind `manage.py bench` (docs/BENCHMARKS.md)."""
