// How one job is shown: its status, progress, details, batches and log (the Jobs tab's detail page
// is put together from these in jobs.js).
import { api, errorText } from "./api.js";
import { h, safeUrl } from "./dom.js";
import { ago, countdown, duration, formatDate } from "./format.js";

const LOG_PAGE = 50;
const BATCH_OK = new Set(["completed"]);
const BATCH_BAD = new Set(["failed", "cancelled", "expired", "cancelling"]);

export function statusDot(status) {
  return h("span", { class: `dot dot-${status}`, title: status, "aria-hidden": "true" });
}

export function statusLabel(status) {
  return h("span", { class: `status status-${status}` }, statusDot(status), " ", status.replaceAll("_", " "));
}

export function progressBadge(job) {
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

/** The job's facts as a definition list. */
export function jobInfo(job) {
  const isKeboola = (job.action_type || "keboola") === "keboola";
  return h(
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
      : job.action_type === "script"
        ? info("script", h("a", { href: `#scripts/${job.action_script_id}`, id: "job-script-link" }, `script #${job.action_script_id}`))
        : info("webhook", job.action_url),
    info("poll interval", duration(job.poll_interval_seconds)),
    info("last check", job.last_check_at ? `${formatDate(job.last_check_at)} (${ago(job.last_check_at)})` : "never"),
    info("next check", job.status === "active" ? countdown(job.next_check_at) : null),
    info("trigger", job.trigger_state),
    info("created", formatDate(job.created_at)),
    info("updated", formatDate(job.updated_at)),
    info("completed", job.completed_at ? formatDate(job.completed_at) : null),
    info("notify", [job.notify_emails, job.notify_webhook_url].filter(Boolean).join(" · ") || null),
  );
}

/** One row per batch, with a progress bar from its request counts. */
export function batchesTable(job) {
  return h(
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
  );
}

/** The job's log, a page at a time. Returns { dom: [log, "load more"], load() }. */
export function createJobLog(id) {
  let offset = 0;
  const logBox = h("div", { class: "log-view", id: "job-log" });
  const more = h("button", { type: "button", class: "btn btn-small", hidden: true }, "load more");
  async function load() {
    try {
      const data = await api.jobLogs(id, { limit: LOG_PAGE, offset });
      const logs = data.logs || [];
      if (!logs.length && offset === 0) logBox.appendChild(h("div", { class: "muted" }, "No log entries."));
      for (const entry of logs) logBox.appendChild(logLine(entry));
      offset += logs.length;
      more.hidden = offset >= (data.total ?? 0);
    } catch (err) {
      logBox.appendChild(h("div", { class: "error" }, errorText(err)));
    }
  }
  more.addEventListener("click", load);
  return { dom: [logBox, more], load };
}
