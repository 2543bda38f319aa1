"""The embedded broker writes each message atomically (teckochecker/broker.py)."""

import os

from kombu import Connection

from teckochecker import broker


def test_a_message_is_invisible_to_workers_until_completely_written(tmp_path, monkeypatch):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    seen_before_rename = []
    real_replace = os.replace

    def replace(src, dst):
        # The moment before the message appears: a worker listing the queue finds nothing.
        seen_before_rename.append(sorted(p.name for p in folder.iterdir() if p.name.endswith(".jobs.msg")))
        real_replace(src, dst)

    monkeypatch.setattr(broker.os, "replace", replace)
    with Connection("filesystem://localhost/", transport=broker.Transport, transport_options=options) as conn:
        queue = conn.SimpleQueue("jobs")
        queue.put({"job_ids": [1, 2, 3]})
        assert seen_before_rename == [[]]
        message = queue.get(timeout=2)
        assert message.payload == {"job_ids": [1, 2, 3]}
        message.ack()
        queue.close()
    assert not any(p.name.endswith(".part") for p in folder.iterdir())


def test_the_embedded_broker_uses_the_atomic_transport(settings):
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        assert settings.CELERY_BROKER_TRANSPORT == "teckochecker.broker:Transport"
    else:
        assert not hasattr(settings, "CELERY_BROKER_TRANSPORT")
