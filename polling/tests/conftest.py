import pytest


@pytest.fixture
def dispatch(monkeypatch):
    """Run the dispatcher once, as beat does; returns the job ids it sent (nothing is queued)."""
    from polling import tasks
    from polling.services.schedules import jobs_dispatch_due

    def run(**kwargs) -> list[int]:
        sent: list[list] = []
        monkeypatch.setattr(tasks.poll_jobs, "apply_async", lambda args, **_: sent.append(args))
        jobs_dispatch_due(**kwargs)
        run.messages = sent
        return [job_id for ids, _token in sent for job_id in ids]

    return run
