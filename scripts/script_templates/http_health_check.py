"""HTTP health check: fails the run (exit code 1) when CHECK_URL does not answer as expected,
so a schedule plus "notify on failure" is an uptime monitor.

Variables: CHECK_URL, EXPECT_STATUS (default 200), TIMEOUT_SECONDS (default 10).
"""

import os
import sys
import time
import urllib.error
import urllib.request

url = os.environ.get("CHECK_URL", "").strip()
if not url.startswith(("http://", "https://")):
    sys.exit("CHECK_URL must be an http:// or https:// address: set it under the script's variables.")
expect = int(os.environ.get("EXPECT_STATUS", "200"))
timeout = float(os.environ.get("TIMEOUT_SECONDS", "10"))

request = urllib.request.Request(url, headers={"User-Agent": "TeckoChecker health check"})
started = time.monotonic()
try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        status = response.status
except urllib.error.HTTPError as error:  # an answer, just not a 2xx one
    status = error.code
except (urllib.error.URLError, OSError) as error:  # DNS, refused, timed out, TLS
    print(f"DOWN {url}: {getattr(error, 'reason', error)}")
    sys.exit(1)
took = round((time.monotonic() - started) * 1000)

if status != expect:
    print(f"DOWN {url}: HTTP {status} (expected {expect}) in {took} ms")
    sys.exit(1)
print(f"UP {url}: HTTP {status} in {took} ms")
