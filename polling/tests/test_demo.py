import socket
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_runs_the_product_end_to_end(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "true",
        "TECKOCHECKER_ENV_FILE": "none",
        "DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "manage.py",
            "demo",
            "--port",
            str(_free_port()),
            "--fake-port",
            str(_free_port()),
            "--finish-within",
            "8",
            "--exit-when-done",
            "--timeout",
            "120",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "✓ Job finished: completed_with_failures" in result.stdout
    assert "(1 create request(s) received)" in result.stdout
    assert 'batch_ids_failed         ["batch_demo_gamma"]' in result.stdout
