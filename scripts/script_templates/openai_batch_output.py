"""Downloads the output of OpenAI batches when a polling job's script action runs this script.

The job gives the script `batch_ids_completed` and `batch_ids_failed` (JSON lists) and three
counts. Each completed batch's output file is saved as output/<batch id>.jsonl in the script's
working directory, where the next runs (or your own code below) can read it.

Variables: OPENAI_API_KEY (a vault secret of type openai), OPENAI_BASE_URL (optional).
"""

import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

completed = os.environ.get("batch_ids_completed")
if completed is None:
    sys.exit(
        "No batch_ids_completed: make this script the action of a polling job "
        "(action type 'script'); the job runs it when its batches are done."
    )
key = os.environ.get("OPENAI_API_KEY", "")
if not key:
    sys.exit("OPENAI_API_KEY is not set: add a variable OPENAI_API_KEY that names your OpenAI secret.")
base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")


def get(path: str) -> bytes:
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


out = pathlib.Path("output")
out.mkdir(exist_ok=True)
problems = 0
for batch_id in json.loads(completed):
    try:
        batch = json.loads(get(f"/batches/{batch_id}"))
        file_id = batch.get("output_file_id")
        if not file_id:
            print(f"{batch_id}: no output file (status {batch.get('status')})")
            continue
        content = get(f"/files/{file_id}/content")
    except (urllib.error.URLError, OSError, ValueError) as error:
        print(f"{batch_id}: download failed: {getattr(error, 'reason', error)}")
        problems += 1
        continue
    target = out / f"{batch_id}.jsonl"
    target.write_bytes(content)
    print(f"{batch_id}: {len(content.splitlines())} result line(s) saved to {target}")

failed = json.loads(os.environ.get("batch_ids_failed") or "[]")
if failed:
    print(f"Batches that did not complete: {', '.join(failed)}")
sys.exit(1 if problems else 0)
