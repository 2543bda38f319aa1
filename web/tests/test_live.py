"""Live updates in a real browser: a change made behind the page's back shows in the open page
without a reload, and when the stream is cut the page says so and polls instead."""

from __future__ import annotations

import pytest

from polling.models import JobStatus, PollingJob
from polling.tests.factories import PollingJobFactory
from web.tests.browser import LOAD_MS, expect, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(autouse=True)
def quick_feed(settings):
    settings.LIVE_POLL_SECONDS = 0.1


def mark_the_page(page) -> None:
    """A reload would lose this, so its presence later proves there was none."""
    page.evaluate("window.__notReloaded = true")


def test_a_job_status_change_shows_in_the_open_page_without_a_reload(page, admin_user):
    job = PollingJobFactory(name="watched live")
    sign_in(page, "#jobs")
    row = page.locator("#jobs-table tr.job-row", has_text="watched live")
    expect()(row.locator(".dot-active")).to_have_count(1)
    expect()(page.locator("#live-status")).to_have_text("● live")
    mark_the_page(page)

    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.PAUSED)
    # Usually within a second, but how soon is for bench/, not a test on a loaded CI machine: the
    # default wait here. The stream brought it, not the fallback polling: it was never lost.
    expect()(row.locator(".dot-paused")).to_have_count(1)
    expect()(page.locator("#console-output")).not_to_contain_text("live updates lost")

    row.locator("a.job-name").click()
    expect()(page.locator("#job-title")).to_have_text("watched live")
    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, last_error="Keboola said no")
    expect()(page.locator("#job-last-error")).to_contain_text("Keboola said no")
    expect()(page.locator("#console-output")).not_to_contain_text("live updates lost")
    assert page.evaluate("window.__notReloaded") is True


def test_when_the_stream_drops_the_page_says_so_and_polls_until_it_is_back(page, admin_user):
    job = PollingJobFactory(name="watched by polling")
    page.route("**/api/events*", lambda route: route.abort())
    sign_in(page, "#jobs")
    status = page.locator("#live-status")
    expect()(status).to_contain_text("live updates lost")
    expect()(status).to_contain_text("refreshing every 5 s")
    expect()(page.locator("#console-output")).to_contain_text("live updates lost")
    mark_the_page(page)

    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.PAUSED)
    row = page.locator("#jobs-table tr.job-row", has_text="watched by polling")
    expect()(row.locator(".dot-paused")).to_have_count(1)  # by the 5 s polling

    page.unroute("**/api/events*")
    expect()(status).to_have_text("● live", timeout=LOAD_MS)  # the page retries every 10 s
    expect()(page.locator("#console-output")).to_contain_text("live updates are back")
    assert page.evaluate("window.__notReloaded") is True
