"""The page in a real browser: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobBatch, JobStatus, PollingJob
from polling.tests.factories import PollingJobFactory, PollingLogFactory
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory
from web.tests.browser import PASSWORD, ROOT, expect, inline_handlers, open_tab, screenshot, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DOCS_SCREENSHOT = ROOT / "docs" / "screenshots" / "jobs-tab.png"
XSS = "<img src=x onerror=alert(1)>"
STACK = "https://connection.eu-central-1.keboola.com"


def add_secret(page, name: str, type_: str, value: str) -> None:
    page.click("#add-secret")
    page.fill("#secret-form [name=name]", name)
    page.select_option("#secret-form [name=type]", type_)
    page.fill("#secret-form [name=value]", value)
    page.click("#secret-form button[type=submit]")
    expect()(page.locator("#secrets-table td.cell-name", has_text=name)).to_be_visible()


def test_login_form_then_manage_secrets_and_a_job(page, admin_user):
    page.goto(f"{page.base}/web")
    expect()(page.locator("#login-form")).to_be_visible()
    page.fill("#login-username", "admin")
    page.fill("#login-password", "wrong-password")
    page.click("#login-form button[type=submit]")
    expect()(page.locator("#login-error")).to_contain_text("Wrong username or password")
    sign_in(page, "#secrets")

    add_secret(page, "openai-prod", "openai", "sk-test-123")
    add_secret(page, "keboola-prod", "keboola", "kbc-token-123")
    assert "sk-test-123" not in page.content()

    open_tab(page, "jobs")
    page.click("#create-job")
    form = page.locator("#job-form")
    assert form.locator("[name=openai_secret_id] option:checked").text_content().startswith("openai-prod")
    assert form.locator("[name=keboola_secret_id] option:checked").text_content().startswith("keboola-prod")
    form.locator("[name=name]").fill("Nightly embeddings")
    form.locator("[name=batch_ids]").fill("batch_aaa111\nbatch_bbb222\n\nbatch_ccc333\n")
    form.locator("[name=keboola_stack_url]").fill(STACK)
    form.locator("[name=keboola_component_id]").fill("kds-team.app-custom-python")
    form.locator("[name=keboola_configuration_id]").fill("123456")
    form.locator("[name=poll_interval_seconds]").fill("60")
    form.locator("button[type=submit]").click()
    expect()(page.locator("#modal")).not_to_be_visible()

    row = page.locator("#jobs-table tr.job-row", has_text="Nightly embeddings")
    expect()(row).to_be_visible()
    expect()(row.locator(".badge").first).to_have_text("0/3")
    expect()(row.locator(".dot-active")).to_have_count(1)
    expect()(row.locator("time.countdown")).to_have_text(re.compile(r"^(in \d|due now)"))
    job = PollingJob.objects.get(name="Nightly embeddings")

    page.fill("#job-search", "zzz-nothing")
    expect()(page.locator("#jobs-table")).to_contain_text("No job matches.")
    page.fill("#job-search", "bbb222")  # a batch id matches too
    expect()(row).to_be_visible()
    page.select_option("#job-status-filter", "paused")
    expect()(page.locator("#jobs-table")).to_contain_text("No job matches.")
    page.select_option("#job-status-filter", "")
    page.fill("#job-search", "")
    expect()(page.locator("#jobs-list .panel-status")).to_have_text("1 job(s)")
    row.locator("a.job-name").click()
    expect()(page.locator("#job-title")).to_have_text("Nightly embeddings")
    expect()(page.locator("#batches-table tbody tr")).to_have_count(3)
    expect()(page.locator("#job-log")).to_contain_text("Job created watching 3 batch(es).")

    page.click("#job-detail [data-action=pause]")
    expect()(page.locator("#job-detail .info-grid .status")).to_have_text(re.compile("paused"))
    assert PollingJob.objects.get(pk=job.pk).status == JobStatus.PAUSED
    page.click("#job-detail [data-action=resume]")
    expect()(page.locator("#job-detail .info-grid .status")).to_have_text(re.compile("active"))

    page.click("#job-detail [data-action=edit]")
    page.fill("#job-form [name=poll_interval_seconds]", "90")
    page.click("#job-form button[type=submit]")
    expect()(page.locator("#job-detail .info-grid")).to_contain_text("1m 30s")
    assert PollingJob.objects.get(pk=job.pk).poll_interval_seconds == 90

    # A secret in use: the server's 409 message is shown, the secret stays.
    open_tab(page, "secrets")
    page.locator("#secrets-table tr", has_text="openai-prod").locator("button", has_text="delete").click()
    page.click("#modal .btn-danger")
    expect()(page.locator(".toast-error")).to_contain_text("is used by active or paused")
    expect()(page.locator("#secrets-table td.cell-name", has_text="openai-prod")).to_be_visible()

    page.fill("#console-input", f"job {job.pk}")
    page.press("#console-input", "Enter")
    expect()(page.locator("#job-title")).to_have_text("Nightly embeddings")
    page.click("#job-detail [data-action=delete]")
    expect()(page.locator("#modal .confirm-message")).to_contain_text("Nightly embeddings")
    page.click("#modal .btn-danger")
    expect()(page.locator("#jobs-list")).to_be_visible()
    expect()(page.locator("#jobs-table")).to_contain_text("No jobs yet")
    assert not PollingJob.objects.filter(pk=job.pk).exists()
    assert page.dialogs == []


def test_user_supplied_text_renders_literally(page, admin_user):
    openai = OpenAISecretFactory(name=XSS)
    job = PollingJobFactory(
        name=XSS,
        openai_secret=openai,
        batch_ids=["batch_x1"],
        last_error=XSS,
        keboola_job_id="4242",
        keboola_job_url="javascript:alert(2)",
    )
    PollingLogFactory(job=job, message=XSS)
    sign_in(page, "#jobs")

    expect()(page.locator("#jobs-table a.job-name")).to_have_text(XSS)
    page.locator("#jobs-table a.job-name").click()
    expect()(page.locator("#job-title")).to_have_text(XSS)
    expect()(page.locator("#job-last-error")).to_contain_text(XSS)
    expect()(page.locator("#job-log")).to_contain_text(XSS)
    expect()(page.locator("#job-detail .info-grid")).to_contain_text("job 4242")
    assert page.locator("#keboola-job-link").count() == 0  # not an http(s) URL: no link
    open_tab(page, "secrets")
    expect()(page.locator("#secrets-table td.cell-name").get_by_text(XSS, exact=True)).to_be_visible()
    open_tab(page, "logs")
    expect()(page.locator("#log-view")).to_contain_text(XSS)
    assert page.locator("img[src=x]").count() == 0
    assert inline_handlers(page) == []
    assert page.dialogs == []


def test_validation_errors_are_shown_next_to_their_fields(page, admin_user):
    OpenAISecretFactory(name="openai-a")
    KeboolaSecretFactory(name="keboola-a")
    sign_in(page, "#jobs")
    page.click("#create-job")
    form = page.locator("#job-form")
    form.locator("[name=name]").fill("bad batches")
    form.locator("[name=batch_ids]").fill("abc")
    form.locator("[name=keboola_stack_url]").fill(STACK)
    form.locator("[name=keboola_component_id]").fill("comp")
    form.locator("[name=keboola_configuration_id]").fill("1")
    form.locator("button[type=submit]").click()
    expect()(form.locator("[data-error-for=batch_ids]")).to_have_text(
        "Invalid batch ID format: 'abc' (must start with 'batch_')"
    )
    expect()(form.locator("[data-field=batch_ids]")).to_have_class(re.compile("has-error"))
    expect()(form.locator("[data-error-for=name]")).to_be_empty()

    form.locator("[name=batch_ids]").fill("batch_ok1")
    form.locator("[name=poll_interval_seconds]").fill("abc")
    form.locator("button[type=submit]").click()
    expect()(form.locator("[data-error-for=poll_interval_seconds]")).not_to_be_empty()
    expect()(form.locator("[data-error-for=batch_ids]")).to_be_empty()
    assert not PollingJob.objects.exists()
    assert "[object Object]" not in page.content()


def test_a_dialog_s_submit_waits_for_its_answer_and_shows_what_is_wrong(page, admin_user):
    OpenAISecretFactory(name="openai-a")
    sign_in(page, "#secrets")
    page.click("#add-secret")
    form = page.locator("#secret-form")
    submit = form.locator("button[type=submit]")
    submit.click()  # nothing filled in: each field says why
    expect()(form.locator("[data-error-for=name]")).not_to_be_empty()
    expect()(form.locator("[data-error-for=value]")).not_to_be_empty()
    expect()(submit).to_be_enabled()

    form.locator("[name=name]").fill("openai-a")
    form.locator("[name=value]").fill("sk-test-1")
    submit.click()  # an error of no field goes to the form's own line
    expect()(form.locator(".form-error")).to_have_text("A secret named 'openai-a' already exists.")
    expect()(form.locator("[data-error-for=name]")).to_be_empty()

    held = []
    page.route(
        "**/api/admin/secrets",
        lambda route: held.append(route) if route.request.method == "POST" else route.continue_(),
    )
    form.locator("[name=name]").fill("openai-b")
    submit.click()
    expect()(submit).to_be_disabled()  # one request at a time
    assert len(held) == 1
    held[0].continue_()
    expect()(page.locator("#modal")).not_to_be_visible()
    expect()(page.locator("#secrets-table td.cell-name", has_text="openai-b")).to_be_visible()
    page.unroute("**/api/admin/secrets")

    open_tab(page, "keys")  # the API key dialog is the same form
    page.click("#add-apikey")
    page.click("#apikey-form button[type=submit]")
    expect()(page.locator("#apikey-form [data-error-for=name]")).not_to_be_empty()
    expect()(page.locator("#modal")).to_be_visible()


def test_server_and_network_failures_are_shown_in_words(page, admin_user):
    sign_in(page, "#secrets")
    page.route(
        re.compile(r".*/api/jobs\?.*"),
        lambda route: route.fulfill(status=500, body="<h1>Server Error</h1>", content_type="text/html"),
    )
    open_tab(page, "jobs")
    expect()(page.locator("#jobs-list .panel-status")).to_have_text("The server had an internal error.")
    page.unroute(re.compile(r".*/api/jobs\?.*"))
    page.route(re.compile(r".*/api/jobs\?.*"), lambda route: route.abort())
    page.click("#jobs-list .toolbar button:has-text('refresh')")
    expect()(page.locator("#jobs-list .panel-status")).to_contain_text("Cannot reach the server")
    page.unroute(re.compile(r".*/api/jobs\?.*"))
    page.route(
        re.compile(r".*/api/jobs\?.*"),
        lambda route: route.fulfill(
            status=429, json={"detail": "Request was throttled."}, headers={"Retry-After": "7"}
        ),
    )
    page.click("#jobs-list .toolbar button:has-text('refresh')")
    expect()(page.locator("#jobs-list .panel-status")).to_have_text(
        "Request was throttled. Try again in 7 s."
    )
    page.unroute(re.compile(r".*/api/jobs\?.*"))

    page.fill("#console-input", "job 999999")
    page.press("#console-input", "Enter")
    expect()(page.locator("#job-detail .panel-status")).to_contain_text("not found")
    assert "[object Object]" not in page.content()

    # The session ends on the server: the next API answer (403) brings the login form back.
    page.context.clear_cookies()
    page.fill("#console-input", "refresh")
    page.press("#console-input", "Enter")
    expect()(page.locator("#login-form")).to_be_visible()
    expect()(page.locator("#login-error")).to_contain_text("Sign in again")
    page.fill("#login-username", "admin")
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect()(page.locator("#tabs")).to_be_visible()


def test_an_answer_that_comes_late_does_not_replace_a_newer_message(page, admin_user):
    # On a busy server the answer for an earlier filter can arrive after the page has moved on
    # (here: the job filter was refused meanwhile); it must not write over what is newer.
    job = PollingJobFactory(name="watched", batch_ids=["batch_l1"])
    PollingLogFactory(job=job, message="slow down", level="warning")
    sign_in(page, "#monitor")
    open_tab(page, "logs")
    expect()(page.locator("#log-view .log-line")).to_have_count(1)
    held = []
    page.route("**/api/logs*", lambda route: held.append(route))
    page.select_option("#log-level", "error")
    for _ in range(100):  # until the page's request reaches the route and is held there
        if held:
            break
        page.wait_for_timeout(50)
    assert held  # one or two (a live refresh may ask for the same filter)
    page.fill("#log-job", "abc")
    page.press("#log-job", "Enter")
    status = page.locator("#panel-logs .panel-status")
    expect()(status).to_contain_text("job id")
    for route in list(held):  # every answer asked for before the message
        with page.expect_response("**/api/logs*"):
            route.continue_()
    page.wait_for_timeout(300)  # the page's handler of that answer runs after the response event
    expect()(status).to_contain_text("job id")
    expect()(page.locator("#log-view .log-line")).to_have_count(1)  # still the earlier view


def test_monitor_logs_system_tabs_and_theme(page, admin_user, settings):
    job = PollingJobFactory(name="watched", batch_ids=["batch_m1", "batch_m2"])
    PollingLogFactory(job=job, message="all quiet", level="info")
    PollingLogFactory(job=job, message="slow down", level="warning")
    sign_in(page, "#monitor")
    expect()(page.locator("#health-cards")).to_contain_text("database")
    expect()(page.locator("#health-cards")).to_contain_text("scheduler")
    expect()(page.locator("#stats-cards .card").nth(1)).to_contain_text("1")
    expect()(page.locator("#activity")).to_contain_text("slow down")

    open_tab(page, "logs")
    expect()(page.locator("#log-view .log-line")).to_have_count(2)
    page.select_option("#log-level", "warning")
    expect()(page.locator("#log-view .log-line")).to_have_count(1)
    expect()(page.locator("#log-view .level-warning")).to_contain_text("slow down")
    page.fill("#log-job", "abc")
    page.press("#log-job", "Enter")
    expect()(page.locator("#logs-panel-status, #panel-logs .panel-status")).to_contain_text("job id")

    open_tab(page, "system")
    expect()(page.locator("#system-version")).to_have_text(settings.VERSION)
    expect()(page.locator("#system-config")).to_contain_text("poll interval")
    sandbox = "bubblewrap (on)" if settings.SCRIPTS_SANDBOX else "OFF: runs are not sandboxed"
    expect()(page.locator("#system-config")).to_contain_text(sandbox)
    for href in ("/docs", "/redoc", "/admin/"):
        assert page.locator(f"#panel-system a[href='{href}']").count() == 1
    assert settings.SECRET_KEY not in page.content()

    page.fill("#console-input", "help")
    page.press("#console-input", "Enter")
    expect()(page.locator("#console-output")).to_contain_text("job <id>")
    page.click("#theme-toggle")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    page.reload()
    page.wait_for_selector("#tabs:not([hidden])")
    assert page.evaluate("localStorage.getItem('teckochecker-theme')") == "light"
    assert page.evaluate("document.documentElement.dataset.theme") == "light"


def _screenshot_jobs() -> None:
    now = timezone.now()
    openai = OpenAISecretFactory(name="openai-prod")
    keboola = KeboolaSecretFactory(name="keboola-prod")
    specs = [
        (
            "nightly-embeddings",
            JobStatus.ACTIVE,
            ["completed", "completed", "in_progress", "validating", "pending"],
        ),
        ("support-ticket-triage", JobStatus.ACTIVE, ["in_progress", "in_progress"]),
        ("catalog-translations", JobStatus.PAUSED, ["completed", "in_progress", "pending"]),
        ("weekly-summaries", JobStatus.COMPLETED, ["completed", "completed"]),
        ("product-tagging", JobStatus.COMPLETED_WITH_FAILURES, ["completed", "failed", "expired"]),
        ("invoice-extraction", JobStatus.FAILED, ["completed"]),
    ]
    for i, (name, status, batch_statuses) in enumerate(reversed(specs)):
        ids = [f"batch_{name[:6]}{n}" for n in range(len(batch_statuses))]
        job = PollingJobFactory(
            name=name,
            status=status,
            openai_secret=openai,
            keboola_secret=keboola,
            keboola_configuration_id=str(901000 + i),
            poll_interval_seconds=[60, 120, 300][i % 3],
            next_check_at=now + timedelta(seconds=45 + 40 * i),
            batch_ids=ids,
        )
        for batch_id, batch_status in zip(ids, batch_statuses, strict=True):
            JobBatch.objects.filter(job=job, batch_id=batch_id).update(
                status=batch_status,
                request_total=200,
                request_completed={"completed": 200, "failed": 120, "expired": 120}.get(batch_status, 80),
                request_failed=80 if batch_status in ("failed", "expired") else 0,
            )


def test_jobs_tab_screenshot(page, admin_user):
    _screenshot_jobs()
    sign_in(page, "#jobs")
    expect()(page.locator("#jobs-table tr.job-row")).to_have_count(6)
    expect()(page.locator("#jobs-table tr.row-active .badge").first).to_have_text("2/5")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1400, "height": 660})
        screenshot(page, DOCS_SCREENSHOT)

    # The detail of a finished job: progress bars from request counts and the Keboola job link.
    job = PollingJob.objects.get(name="product-tagging")
    PollingJob.objects.filter(pk=job.pk).update(
        keboola_job_id="777", keboola_job_url="https://connection.eu-central-1.keboola.com/jobs/777"
    )
    page.fill("#console-input", f"job {job.pk}")
    page.press("#console-input", "Enter")
    expect()(page.locator("#job-title")).to_have_text("product-tagging")
    expect()(page.locator("#keboola-job-link")).to_have_attribute(
        "href", "https://connection.eu-central-1.keboola.com/jobs/777"
    )
    expect()(page.locator("#batches-table .progress")).to_have_count(3)
    expect()(page.locator("#batches-table tr", has_text="expired")).to_contain_text("200/200 (80 failed)")
