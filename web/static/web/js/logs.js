// Logs tab: a tail-like view of recent events, newest at the bottom, coloured by level.
import { STALE, api, errorText, newestOnly } from "./api.js";
import { clear, h, replace } from "./dom.js";
import { formatDate, formatTime } from "./format.js";
import { soon, subscribe } from "./live.js";

export function createLogsTab(panel, ctx) {
  const level = h(
    "select",
    { id: "log-level", "aria-label": "level" },
    h("option", { value: "" }, "all levels"),
    ["info", "warning", "error"].map((l) => h("option", { value: l }, l)),
  );
  const job = h("input", { id: "log-job", inputmode: "numeric", placeholder: "job id", size: 8, autocomplete: "off" });
  const limit = h("select", { id: "log-limit", "aria-label": "lines" }, [50, 100, 200, 500].map((n) => h("option", { value: n }, `${n} lines`)));
  limit.value = "100";
  const status = h("div", { class: "panel-status" });
  const view = h("div", { class: "log-view tail", id: "log-view" });

  replace(
    panel,
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> logs"),
      level,
      job,
      limit,
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", id: "logs-refresh", onclick: () => load() }, "refresh"),
      h("button", { type: "button", class: "btn", onclick: () => { clear(view); status.textContent = "cleared (refresh to show again)"; } }, "clear"),
    ),
    status,
    view,
  );
  for (const control of [level, limit]) control.addEventListener("change", () => load());
  job.addEventListener("keydown", (event) => {
    if (event.key === "Enter") load();
  });
  job.addEventListener("change", () => load());
  // New entries arrive live (live.js) while the tab is on screen, like `tail -f`.
  const reload = soon(() => ctx.isVisible("logs") && load({ live: true }), 200);
  subscribe(["log"], reload, reload);

  // Filters change faster than a busy server answers: only the newest request may fill the view.
  const newest = newestOnly();
  async function load({ live = false } = {}) {
    const jobId = job.value.trim();
    if (jobId && !/^\d+$/.test(jobId)) {
      newest(Promise.resolve(null)); // an answer still on its way is older than this message
      status.className = "panel-status error";
      status.textContent = "The job filter takes a job id (a number).";
      return;
    }
    try {
      const data = await newest(api.logs({ level: level.value, job: jobId, limit: limit.value }));
      if (data === STALE) return;
      const entries = (data.logs || []).slice().reverse(); // oldest first, like `tail`
      const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 30;
      replace(
        view,
        entries.length
          ? entries.map((e) =>
              h(
                "div",
                { class: `log-line level-${e.level}` },
                h("span", { class: "log-time", title: formatDate(e.created_at) }, formatTime(e.created_at)),
                h("span", { class: "log-level" }, `[${String(e.level).toUpperCase()}]`),
                h("a", { href: `#jobs/${e.job_id}`, class: "log-job" }, `#${e.job_id} ${e.job_name ?? ""}`),
                h("span", { class: "log-status" }, e.status),
                h("span", { class: "log-message" }, e.message),
              ),
            )
          : h("div", { class: "muted" }, "No log entries match."),
      );
      if (atBottom || !live) view.scrollTop = view.scrollHeight;
      status.className = "panel-status";
      status.textContent = `${entries.length} of ${data.total ?? entries.length} entries · ${formatTime(new Date().toISOString())}`;
    } catch (err) {
      status.className = "panel-status error";
      status.textContent = errorText(err);
    }
  }

  return {
    load,
    filterJob(id) {
      job.value = String(id);
    },
  };
}
