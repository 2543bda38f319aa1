#!/usr/bin/env python
"""Django's command-line utility: `python manage.py help` lists TeckoChecker's commands."""

import os
import sys
import warnings

# Set by `init` below and read by the init command, which runs the rest of itself afresh.
INIT_BOOTSTRAP_VAR = "TECKOCHECKER_INIT_BOOTSTRAP"


def _let_init_start_without_keys() -> None:
    """`init` writes the keys that production settings insist on, so it must start without them.

    It runs with DEBUG's development keys just long enough to write `.env`; the init command
    then continues in a fresh process with the caller's own environment and the new keys.
    """
    if sys.argv[1:2] != ["init"] or INIT_BOOTSTRAP_VAR in os.environ:
        return
    original = os.environ.get("DEBUG")
    os.environ[INIT_BOOTSTRAP_VAR] = "unset" if original is None else f"set:{original}"
    os.environ["DEBUG"] = "true"
    warnings.filterwarnings("ignore", message=".*insecure development key")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
    _let_init_start_without_keys()
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A bad setting is the user's to fix: one clear line, no traceback.
        print(f"Configuration error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
