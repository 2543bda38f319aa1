// Monitor tab: health of database, broker, worker and scheduler; job counts; recent activity.
// Job changes and new log entries refresh it while it is on screen (live.js).
import { api, errorText } from "./api.js";
import { h, replace } from "./dom.js";
import { ago, duration, formatTime } from "./format.js";
import { soon, subscribe } from "./live.js";

function light(ok, label, detail) {
  return h(
    "div",
    { class: `card health ${ok ? "ok" : "bad"}` },
    h("div", { class: "card-title" }, h("span", { class: `dot ${ok ? "dot-active" : "dot-failed"}` }), " ", label),
    h("div", { class: "card-value" }, ok ? "up" : "down"),
    h("div", { class: "card-detail" }, detail),
  );
}

function count(label, value, kind = "") {
  return h("div", { class: `card stat ${kind}` }, h("div", { class: "card-title" }, label), h("div", { class: "card-value" }, String(value ?? "—")));
}

export function createMonitorTab(panel, ctx) {
  const status = h("div", { class: "panel-status" });
  const healthBox = h("div", { class: "cards", id: "health-cards" });
  const statsBox = h("div", { class: "cards", id: "stats-cards" });
  const activity = h("div", { class: "log-view", id: "activity" });

  replace(
    panel,
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> monitor"),
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", onclick: () => load() }, "refresh"),
    ),
    status,
    h("h3", {}, "> health"),
    healthBox,
    h("h3", {}, "> jobs"),
    statsBox,
    h("h3", {}, "> recent activity"),
    activity,
  );

  const reload = soon(() => ctx.isVisible("monitor") && load(), 300);
  subscribe(["job", "log"], reload, reload);

  async function load() {
    const [health, stats, logs] = await Promise.allSettled([api.health(), api.stats(), api.logs({ limit: 20 })]);
    const problems = [];
    if (health.status === "fulfilled") {
      const hv = health.value;
      const worker = hv.worker || {};
      const scheduler = hv.scheduler || {};
      replace(
        healthBox,
        light(hv.status === "healthy", "overall", `${hv.status} · v${hv.version}`),
        light(hv.database === "connected", "database", hv.database),
        light(hv.broker === "connected", "broker", hv.broker),
        light(Boolean(worker.alive), "worker", `${worker.count ?? 0} alive · last seen ${ago(worker.last_seen)}`),
        light(Boolean(scheduler.alive), "scheduler (beat)", `last seen ${ago(scheduler.last_seen)}`),
      );
    } else {
      replace(healthBox, h("div", { class: "error" }, `health: ${errorText(health.reason)}`));
      problems.push(errorText(health.reason));
    }
    if (stats.status === "fulfilled") {
      const s = stats.value;
      replace(
        statsBox,
        count("total", s.total_jobs),
        count("active", s.active_jobs, "s-active"),
        count("paused", s.paused_jobs, "s-paused"),
        count("completed", s.completed_jobs, "s-completed"),
        count("with failures", s.completed_with_failures_jobs, "s-cwf"),
        count("failed", s.failed_jobs, "s-failed"),
        count("secrets", s.total_secrets),
        count("log entries", s.total_logs),
        count("uptime", duration(s.uptime_seconds)),
      );
    } else {
      replace(statsBox, h("div", { class: "error" }, `stats: ${errorText(stats.reason)}`));
      problems.push(errorText(stats.reason));
    }
    if (logs.status === "fulfilled") {
      const entries = logs.value.logs || [];
      replace(
        activity,
        entries.length
          ? entries.map((e) =>
              h(
                "div",
                { class: `log-line level-${e.level}` },
                h("span", { class: "log-time" }, formatTime(e.created_at)),
                h("a", { href: `#jobs/${e.job_id}`, class: "log-job" }, `#${e.job_id} ${e.job_name ?? ""}`),
                h("span", { class: "log-status" }, e.status),
                h("span", { class: "log-message" }, e.message),
              ),
            )
          : h("div", { class: "muted" }, "No activity yet."),
      );
    } else {
      replace(activity, h("div", { class: "error" }, errorText(logs.reason)));
    }
    status.className = problems.length ? "panel-status error" : "panel-status";
    status.textContent = problems.length ? [...new Set(problems)].join(" ") : `updated ${formatTime(new Date().toISOString())}`;
  }

  return { load };
}
