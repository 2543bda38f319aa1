// Jobs tab: the list (search, status filter, paging) and one job's detail view.
import { api, errorText } from "./api.js";
import { confirmAction, h, replace, safeUrl, toast } from "./dom.js";
import { ago, countdown, duration, formatDate } from "./format.js";
import { openJobForm } from "./job-form.js";

export const JOB_STATUSES = ["active", "paused", "completed", "completed_with_failures", "failed"];
const PAGE_SIZE = 20;
const LOG_PAGE = 50;
const BATCH_OK = new Set(["completed"]);
const BATCH_BAD = new Set(["failed", "cancelled", "expired", "cancelling"]);

export function statusDot(status) {
  return h("span", { class: `dot dot-${status}`, title: status, "aria-hidden": "true" });
}

export function statusLabel(status) {
  return h("span", { class: `status status-${status}` }, statusDot(status), " ", status.replaceAll("_", " "));
}

function progressBadge(job) {
  const done = (job.completed_count || 0) + (job.failed_count || 0);
  return h(
    "span",
    { class: "badges" },
    h(
      "span",
      {
        class: `badge ${done === job.batch_count ? "badge-done" : ""}`,
        title: `${job.completed_count} completed, ${job.failed_count} failed/cancelled/expired, of ${job.batch_count}`,
      },
      `${done}/${job.batch_count}`,
    ),
    job.failed_count ? h("span", { class: "badge badge-failed" }, `${job.failed_count} failed`) : null,
  );
}

export function createJobsTab(panel, ctx) {
  const state = { search: "", status: "", offset: 0, total: 0, view: "list", jobId: null, logOffset: 0 };
  let searchTimer = null;

  // --- list -----------------------------------------------------------------------------------
  const search = h("input", { type: "search", id: "job-search", placeholder: "search name or batch id", autocomplete: "off" });
  const statusFilter = h(
    "select",
    { id: "job-status-filter", "aria-label": "status filter" },
    h("option", { value: "" }, "all statuses"),
    JOB_STATUSES.map((s) => h("option", { value: s }, s.replaceAll("_", " "))),
  );
  const listStatus = h("div", { class: "panel-status" });
  const tbody = h("tbody");
  const pageInfo = h("span", { class: "muted" });
  const prev = h("button", { type: "button", class: "btn btn-small", onclick: () => page(-1) }, "« prev");
  const next = h("button", { type: "button", class: "btn btn-small", onclick: () => page(1) }, "next »");
  const listView = h(
    "div",
    { id: "jobs-list" },
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> jobs"),
      search,
      statusFilter,
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", onclick: () => loadList() }, "refresh"),
      h("button", { type: "button", class: "btn btn-primary", id: "create-job", onclick: () => create() }, "+ Create Job"),
    ),
    listStatus,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "jobs-table" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["status", "id", "name", "batches", "action", "interval", "next check", "created", ""].map((t) => h("th", {}, t)),
          ),
        ),
        tbody,
      ),
    ),
    h("div", { class: "pager" }, prev, pageInfo, next),
  );
  const detailView = h("div", { id: "job-detail", hidden: true });
  replace(panel, listView, detailView);

  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.search = search.value.trim();
      state.offset = 0;
      loadList();
    }, 300);
  });
  statusFilter.addEventListener("change", () => {
    state.status = statusFilter.value;
    state.offset = 0;
    loadList();
  });

  function page(direction) {
    const offset = state.offset + direction * PAGE_SIZE;
    if (offset < 0 || offset >= Math.max(state.total, 1)) return;
    state.offset = offset;
    loadList();
  }

  function actionButtons(job, after) {
    const buttons = [];
    if (job.status === "active") buttons.push(h("button", { type: "button", class: "btn btn-small", dataset: { action: "pause" }, onclick: () => pause(job, after) }, "pause"));
    if (job.status === "paused") buttons.push(h("button", { type: "button", class: "btn btn-small", dataset: { action: "resume" }, onclick: () => resume(job, after) }, "resume"));
    buttons.push(h("button", { type: "button", class: "btn btn-small", dataset: { action: "edit" }, onclick: () => edit(job, after) }, "edit"));
    buttons.push(h("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "delete" }, onclick: () => remove(job) }, "delete"));
    return buttons;
  }

  function target(job) {
    if (job.action_type === "webhook") return h("span", { title: job.action_url || "" }, "webhook");
    return h(
      "span",
      { title: `${job.keboola_stack_url} · ${job.keboola_component_id} / ${job.keboola_configuration_id}` },
      `keboola cfg ${job.keboola_configuration_id}`,
    );
  }

  function row(job) {
    return h(
      "tr",
      { dataset: { jobId: job.id }, class: `job-row row-${job.status}` },
      h("td", {}, statusLabel(job.status)),
      h("td", {}, h("a", { href: `#jobs/${job.id}`, class: "job-link" }, `#${job.id}`)),
      h("td", { class: "cell-name" }, h("a", { href: `#jobs/${job.id}`, class: "job-name" }, job.name)),
      h("td", {}, progressBadge(job)),
      h("td", { class: "cell-target" }, target(job)),
      h("td", {}, duration(job.poll_interval_seconds)),
      h("td", {}, job.status === "active" ? countdown(job.next_check_at) : h("span", { class: "muted" }, "—")),
      h("td", { class: "cell-date" }, formatDate(job.created_at)),
      h("td", { class: "actions" }, actionButtons(job, loadList)),
    );
  }

  async function loadList() {
    listStatus.textContent = "loading…";
    listStatus.className = "panel-status";
    try {
      const data = await api.jobs({ search: state.search, status: state.status, limit: PAGE_SIZE, offset: state.offset });
      const jobs = data.jobs || [];
      state.total = data.total ?? jobs.length;
      if (!jobs.length && state.offset > 0) {
        state.offset = Math.max(0, state.offset - PAGE_SIZE);
        return loadList();
      }
      const filtered = state.search || state.status;
      replace(
        tbody,
        jobs.length
          ? jobs.map(row)
          : h("tr", {}, h("td", { colspan: 9, class: "empty" }, filtered ? "No job matches." : "No jobs yet. Add secrets, then create a job.")),
      );
      const from = jobs.length ? state.offset + 1 : 0;
      pageInfo.textContent = `${from}–${state.offset + jobs.length} of ${state.total}`;
      prev.disabled = state.offset === 0;
      next.disabled = state.offset + jobs.length >= state.total;
      listStatus.textContent = `${state.total} job(s)${filtered ? " match" : ""}`;
    } catch (err) {
      listStatus.textContent = errorText(err);
      listStatus.className = "panel-status error";
    }
  }

  // --- actions --------------------------------------------------------------------------------
  async function run(label, fn, after) {
    try {
      const result = await fn();
      ctx.print(label(result));
      toast(label(result), "success");
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    if (after) after();
  }

  const pause = (job, after) => run((j) => `job ${j.id} paused`, () => api.pauseJob(job.id), after);
  const resume = (job, after) => run((j) => `job ${j.id} resumed`, () => api.resumeJob(job.id), after);

  function edit(job, after) {
    openJobForm(ctx, { job, onSaved: () => after && after() });
  }

  function create() {
    openJobForm(ctx, {
      onSaved: () => {
        state.offset = 0;
        loadList();
      },
    });
  }

  async function remove(job) {
    const ok = await confirmAction(`Delete job #${job.id} '${job.name}' with its batches and log?`);
    if (!ok) return;
    await run((r) => r.message || `job ${job.id} deleted`, () => api.deleteJob(job.id));
    if (state.view === "detail") ctx.navigate("jobs");
    else loadList();
  }

  // --- detail ---------------------------------------------------------------------------------
  function info(label, value) {
    const empty = value === null || value === undefined || value === "";
    return [h("dt", {}, label), h("dd", {}, empty ? h("span", { class: "muted" }, "—") : value)];
  }

  function batchProgress(batch) {
    const counts = batch.request_counts || { total: 0, completed: 0, failed: 0 };
    const total = counts.total || 0;
    const okPct = total ? (100 * counts.completed) / total : BATCH_OK.has(batch.status) ? 100 : 0;
    const badPct = total ? (100 * counts.failed) / total : 0;
    return h(
      "div",
      { class: "progress-cell" },
      h(
        "div",
        { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": total, "aria-valuenow": counts.completed + counts.failed },
        h("div", { class: "progress-ok", style: `width:${okPct.toFixed(1)}%` }),
        h("div", { class: "progress-bad", style: `width:${badPct.toFixed(1)}%` }),
      ),
      h("span", { class: "progress-text" }, total ? `${counts.completed + counts.failed}/${total}${counts.failed ? ` (${counts.failed} failed)` : ""}` : "no requests yet"),
    );
  }

  function batchStatus(status) {
    const kind = BATCH_OK.has(status) ? "ok" : BATCH_BAD.has(status) ? "bad" : status === "pending" ? "pending" : "running";
    return h("span", { class: `batch-status batch-${kind}` }, status.replaceAll("_", " "));
  }

  function keboolaJob(job) {
    if (!job.keboola_job_id && !job.keboola_job_url) return null;
    const url = safeUrl(job.keboola_job_url);
    const label = `job ${job.keboola_job_id || ""}`.trim();
    return [
      url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", id: "keboola-job-link" }, label) : label,
      job.keboola_job_status ? ` · ${job.keboola_job_status}` : "",
      job.keboola_job_duration_seconds != null ? ` · ${duration(job.keboola_job_duration_seconds)}` : "",
    ];
  }

  function logLine(entry) {
    return h(
      "div",
      { class: `log-line level-${entry.level}` },
      h("span", { class: "log-time", title: entry.created_at }, formatDate(entry.created_at)),
      h("span", { class: "log-level" }, `[${String(entry.level).toUpperCase()}]`),
      h("span", { class: "log-status" }, entry.status),
      h("span", { class: "log-message" }, entry.message),
    );
  }

  async function loadDetail(id, { keepLogs = false } = {}) {
    state.view = "detail";
    state.jobId = id;
    listView.hidden = true;
    detailView.hidden = false;
    if (!keepLogs) replace(detailView, h("div", { class: "panel-status" }, `loading job #${id}…`));
    let job;
    try {
      job = await api.job(id);
    } catch (err) {
      replace(
        detailView,
        h("div", { class: "toolbar" }, h("a", { href: "#jobs", class: "btn btn-small" }, "« all jobs")),
        h("div", { class: "panel-status error" }, err.status === 404 ? `Job #${id}: ${errorText(err)}` : errorText(err)),
      );
      return;
    }
    if (state.view !== "detail" || state.jobId !== id) return;
    const after = () => loadDetail(id);
    const logBox = h("div", { class: "log-view", id: "job-log" });
    const more = h("button", { type: "button", class: "btn btn-small", hidden: true }, "load more");
    state.logOffset = 0;

    async function loadLogs() {
      try {
        const data = await api.jobLogs(id, { limit: LOG_PAGE, offset: state.logOffset });
        const logs = data.logs || [];
        if (!logs.length && state.logOffset === 0) logBox.appendChild(h("div", { class: "muted" }, "No log entries."));
        for (const entry of logs) logBox.appendChild(logLine(entry));
        state.logOffset += logs.length;
        more.hidden = state.logOffset >= (data.total ?? 0);
      } catch (err) {
        logBox.appendChild(h("div", { class: "error" }, errorText(err)));
      }
    }
    more.addEventListener("click", loadLogs);

    const isKeboola = (job.action_type || "keboola") === "keboola";
    replace(
      detailView,
      h(
        "div",
        { class: "toolbar" },
        h("a", { href: "#jobs", class: "btn btn-small" }, "« all jobs"),
        h("h2", { class: "detail-title" }, statusDot(job.status), " ", h("span", { id: "job-title" }, job.name), h("span", { class: "muted" }, ` #${job.id}`)),
        h("div", { class: "spacer" }),
        h("button", { type: "button", class: "btn btn-small", onclick: after }, "refresh"),
        actionButtons(job, after),
      ),
      job.last_error ? h("div", { class: "last-error", id: "job-last-error" }, h("strong", {}, "last error: "), job.last_error) : null,
      h(
        "dl",
        { class: "info-grid" },
        info("status", statusLabel(job.status)),
        info("batches", progressBadge(job)),
        info("openai secret", job.openai_secret_name ? `${job.openai_secret_name} (#${job.openai_secret_id})` : null),
        isKeboola
          ? [
              info("keboola secret", job.keboola_secret_name ? `${job.keboola_secret_name} (#${job.keboola_secret_id})` : null),
              info("stack", job.keboola_stack_url),
              info("component / config", `${job.keboola_component_id} / ${job.keboola_configuration_id}`),
              info("keboola job", keboolaJob(job)),
            ]
          : info("webhook", job.action_url),
        info("poll interval", duration(job.poll_interval_seconds)),
        info("last check", job.last_check_at ? `${formatDate(job.last_check_at)} (${ago(job.last_check_at)})` : "never"),
        info("next check", job.status === "active" ? countdown(job.next_check_at) : null),
        info("trigger", job.trigger_state),
        info("created", formatDate(job.created_at)),
        info("updated", formatDate(job.updated_at)),
        info("completed", job.completed_at ? formatDate(job.completed_at) : null),
        info("notify", [job.notify_emails, job.notify_webhook_url].filter(Boolean).join(" · ") || null),
      ),
      h("h3", {}, `> batches (${job.batch_count})`),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table", id: "batches-table" },
          h("thead", {}, h("tr", {}, ["batch id", "status", "requests", "created", "completed"].map((t) => h("th", {}, t)))),
          h(
            "tbody",
            {},
            (job.batches || []).map((b) =>
              h(
                "tr",
                { dataset: { batchId: b.batch_id } },
                h("td", { class: "mono" }, b.batch_id),
                h("td", {}, batchStatus(b.status)),
                h("td", {}, batchProgress(b)),
                h("td", {}, formatDate(b.created_at)),
                h("td", {}, b.completed_at ? formatDate(b.completed_at) : "—"),
              ),
            ),
          ),
        ),
      ),
      h("h3", {}, "> log"),
      logBox,
      more,
    );
    await loadLogs();
  }

  function showList() {
    state.view = "list";
    state.jobId = null;
    detailView.hidden = true;
    listView.hidden = false;
    return loadList();
  }

  return {
    load: () => (state.view === "detail" ? loadDetail(state.jobId) : loadList()),
    showList,
    showDetail: (id) => loadDetail(id),
  };
}
