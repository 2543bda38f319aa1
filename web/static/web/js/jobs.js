// Jobs tab: the list (search, status filter, paging) and one job's detail view.
import { STALE, api, errorText, newestOnly } from "./api.js";
import { confirmAction, h, replace, toast } from "./dom.js";
import { countdown, duration, formatDate } from "./format.js";
import { openJobForm } from "./job-form.js";
import { soon, subscribe } from "./live.js";
import { batchesTable, createJobLog, jobInfo, progressBadge, statusDot, statusLabel } from "./job-view.js";

export const JOB_STATUSES = ["active", "paused", "completed", "completed_with_failures", "failed"];
const PAGE_SIZE = 20;

export function createJobsTab(panel, ctx) {
  const state = { search: "", status: "", offset: 0, total: 0, view: "list", jobId: null };
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
    if (job.action_type === "script") return h("a", { href: `#scripts/${job.action_script_id}` }, `script #${job.action_script_id}`);
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

  const newestList = newestOnly();
  async function loadList({ quiet = false } = {}) {
    if (!quiet) {
      listStatus.textContent = "loading…";
      listStatus.className = "panel-status";
    }
    try {
      const data = await newestList(api.jobs({ search: state.search, status: state.status, limit: PAGE_SIZE, offset: state.offset }));
      if (data === STALE) return;
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
  /** The job, or null after showing why it could not be loaded. */
  async function fetchJob(id) {
    try {
      return await api.job(id);
    } catch (err) {
      replace(
        detailView,
        h("div", { class: "toolbar" }, h("a", { href: "#jobs", class: "btn btn-small" }, "« all jobs")),
        h("div", { class: "panel-status error" }, err.status === 404 ? `Job #${id}: ${errorText(err)}` : errorText(err)),
      );
      return null;
    }
  }

  function detailToolbar(job, after) {
    return h(
      "div",
      { class: "toolbar" },
      h("a", { href: "#jobs", class: "btn btn-small" }, "« all jobs"),
      h("h2", { class: "detail-title" }, statusDot(job.status), " ", h("span", { id: "job-title" }, job.name), h("span", { class: "muted" }, ` #${job.id}`)),
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn btn-small", onclick: after }, "refresh"),
      actionButtons(job, after),
    );
  }

  async function loadDetail(id, { quiet = false } = {}) {
    state.view = "detail";
    state.jobId = id;
    listView.hidden = true;
    detailView.hidden = false;
    if (!quiet) replace(detailView, h("div", { class: "panel-status" }, `loading job #${id}…`));
    const job = await fetchJob(id);
    if (!job || state.view !== "detail" || state.jobId !== id) return;
    const log = createJobLog(id);
    replace(
      detailView,
      detailToolbar(job, () => loadDetail(id)),
      job.last_error ? h("div", { class: "last-error", id: "job-last-error" }, h("strong", {}, "last error: "), job.last_error) : null,
      jobInfo(job),
      h("h3", {}, `> batches (${job.batch_count})`),
      batchesTable(job),
      h("h3", {}, "> log"),
      log.dom,
    );
    await log.load();
  }

  function showList() {
    state.view = "list";
    state.jobId = null;
    detailView.hidden = true;
    listView.hidden = false;
    return loadList();
  }

  // Live: a change of a listed job reloads the list; of the open job (or a new entry in its
  // log), the job. Only while the tab is on screen.
  const reloadList = soon(() => ctx.isVisible("jobs") && state.view === "list" && loadList({ quiet: true }));
  const reloadDetail = soon((id) => ctx.isVisible("jobs") && state.view === "detail" && state.jobId === id && loadDetail(id, { quiet: true }));
  subscribe(
    ["job", "log"],
    (kind, data) => {
      if (state.view === "list" && kind === "job") reloadList();
      const jobId = kind === "job" ? data.id : data.job_id;
      if (state.view === "detail" && jobId === state.jobId) reloadDetail(jobId);
    },
    () => (state.view === "detail" ? reloadDetail(state.jobId) : reloadList()),
  );

  return {
    load: () => (state.view === "detail" ? loadDetail(state.jobId) : loadList()),
    showList,
    showDetail: (id) => loadDetail(id),
  };
}
