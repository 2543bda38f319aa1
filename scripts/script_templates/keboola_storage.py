"""Keboola Storage API: lists the project's buckets, authenticated with a Storage API token
kept in the vault.

Variables: KBC_TOKEN (a vault secret of type keboola), KBC_URL (your stack, e.g.
https://connection.eu-central-1.keboola.com).
"""

import json
import os
import sys
import urllib.error
import urllib.request

token = os.environ.get("KBC_TOKEN", "")
stack = os.environ.get("KBC_URL", "https://connection.keboola.com").rstrip("/")
if not token:
    sys.exit("KBC_TOKEN is not set: add a variable KBC_TOKEN that names your Keboola secret.")

request = urllib.request.Request(
    f"{stack}/v2/storage/buckets",
    headers={"X-StorageApi-Token": token, "Accept": "application/json"},
)
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        buckets = json.load(response)
except urllib.error.HTTPError as error:
    try:
        reason = json.load(error).get("error", "")
    except ValueError:
        reason = ""
    sys.exit(f"Keboola answered HTTP {error.code}: {reason or error.reason}")
except (urllib.error.URLError, OSError) as error:
    sys.exit(f"Cannot reach {stack}: {getattr(error, 'reason', error)}")

print(f"{len(buckets)} bucket(s) in the project:")
for bucket in buckets:
    print(f"  {bucket['id']:<30} {bucket.get('stage', ''):<4} {bucket.get('description') or ''}")
