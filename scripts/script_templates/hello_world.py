"""Hello world: prints what every run is told about itself."""

import datetime
import os
import platform

now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
print(f"Hello from {os.environ.get('TECKOCHECKER_SCRIPT', 'a script')}!")
print(f"Python {platform.python_version()}, {now}")
print(f"Run {os.environ.get('TECKOCHECKER_RUN_ID')}, started by: {os.environ.get('TECKOCHECKER_TRIGGER')}")
