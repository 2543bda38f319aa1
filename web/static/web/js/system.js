// System tab: version, health, configuration summary (from /web/config, never a secret), links.
import { api, errorText } from "./api.js";
import { createBundleSection } from "./bundle.js";
import { h, replace } from "./dom.js";
import { formatDate, viewerTimeZone } from "./format.js";

const ENDPOINTS = [
  ["GET", "/api/health", "health (public)"],
  ["GET", "/api/stats", "counts per job status"],
  ["GET | POST", "/api/admin/secrets", "list / add secrets"],
  ["DELETE", "/api/admin/secrets/{id}", "delete an unused secret"],
  ["GET | POST", "/api/jobs", "list (?status= ?search= ?limit= ?offset=) / create"],
  ["GET | PUT | DELETE", "/api/jobs/{id}", "one job"],
  ["POST", "/api/jobs/{id}/pause | resume", "pause / resume"],
  ["GET", "/api/jobs/{id}/logs", "a job's log"],
  ["GET", "/api/logs", "recent events (?level= ?job=)"],
  ["GET | POST", "/api/scripts", "list / create scripts"],
  ["GET | PUT | PATCH | DELETE", "/api/scripts/{id}", "one script"],
  ["POST", "/api/scripts/{id}/run | cancel", "run now / cancel its runs"],
  ["GET", "/api/scripts/{id}/runs", "a script's runs"],
  ["GET | POST", "/api/scripts/{id}/environment[/check | /rebuild]", "its environment"],
  ["GET", "/api/runs/{id}[/output]", "one run with its output"],
  ["POST", "/api/runs/{id}/cancel", "cancel a queued or running run"],
  ["GET", "/api/pythons", "Python versions found on the server"],
  ["GET", "/api/export", "every script and live job as one bundle (?download=true)"],
  ["POST", "/api/import", "import a bundle, all or nothing (?dry_run=true)"],
];

function scriptsLine(s) {
  if (!s) return "—";
  const mib = (s.output_max_bytes / (1024 * 1024)).toFixed(s.output_max_bytes % (1024 * 1024) ? 2 : 0);
  return `queue ${s.queue}, ${s.concurrency} slot(s); defaults ${s.timeout_seconds} s, ${s.memory_mb} MB, ${s.cpu_seconds} s CPU; output up to ${mib} MiB; history ${s.history_days} days / ${s.history_max_runs} runs`;
}

function rows(pairs) {
  return h("dl", { class: "info-grid" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

export function createSystemTab(panel, ctx) {
  const status = h("div", { class: "panel-status" });
  const about = h("div", { id: "system-about" });
  const config = h("div", { id: "system-config" });
  replace(
    panel,
    h("div", { class: "toolbar" }, h("h2", {}, "> system"), h("div", { class: "spacer" }), h("button", { type: "button", class: "btn", onclick: () => load() }, "refresh")),
    status,
    about,
    h("h3", {}, "> configuration"),
    config,
    h("h3", {}, "> import / export"),
    createBundleSection(),
    h("h3", {}, "> links"),
    h(
      "ul",
      { class: "links" },
      h("li", {}, h("a", { href: "/docs", target: "_blank", rel: "noopener" }, "/docs"), " — interactive API documentation (Swagger UI)"),
      h("li", {}, h("a", { href: "/redoc", target: "_blank", rel: "noopener" }, "/redoc"), " — API reference (ReDoc)"),
      h("li", {}, h("a", { href: "/admin/", target: "_blank", rel: "noopener" }, "/admin"), " — Django admin"),
      h("li", {}, h("a", { href: "/api/schema", target: "_blank", rel: "noopener" }, "/api/schema"), " — OpenAPI 3 schema"),
    ),
    h("h3", {}, "> api endpoints"),
    h(
      "table",
      { class: "table compact" },
      h("tbody", {}, ENDPOINTS.map(([m, p, d]) => h("tr", {}, h("td", { class: "mono method" }, m), h("td", { class: "mono" }, p), h("td", {}, d)))),
    ),
  );

  async function load() {
    const [health, cfg] = await Promise.allSettled([api.health(), api.config()]);
    if (health.status === "fulfilled") {
      const hv = health.value;
      replace(
        about,
        rows([
          ["version", h("span", { id: "system-version" }, hv.version)],
          ["status", h("span", { class: hv.status === "healthy" ? "ok" : "error" }, hv.status)],
          ["database", hv.database],
          ["broker", hv.broker],
          ["server time", formatDate(hv.timestamp)],
          ["your time zone", viewerTimeZone],
          ["signed in as", ctx.username() || "—"],
        ]),
      );
      status.textContent = "";
    } else {
      replace(about, h("div", { class: "error" }, errorText(health.reason)));
    }
    if (cfg.status === "fulfilled") {
      const c = cfg.value;
      const p = c.poll_interval_seconds || {};
      replace(
        config,
        rows([
          ["database engine", c.database],
          ["broker", `${c.broker} (queue ${c.queue})`],
          ["openai endpoint", c.openai_base_url],
          ["poll interval", `${p.min}–${p.max} s (default ${p.default} s)`],
          ["failure limit", `${c.poll_failure_limit} bad answers; ${c.trigger_max_attempts} trigger attempts`],
          ["log retention", `${c.log_retention_days} days`],
          ["heartbeat stale after", `${c.heartbeat_stale_seconds} s`],
          ["rate limits", Object.entries(c.throttle || {}).map(([k, v]) => `${k} ${v}`).join(", ")],
          ["notifications", `${c.notifications?.emails ?? 0} default e-mail(s), webhook ${c.notifications?.webhook ? "on" : "off"}`],
          ["scripts", scriptsLine(c.scripts)],
          ["script sandbox", c.scripts ? (c.scripts.sandbox ? "bubblewrap (on)" : "OFF: runs are not sandboxed (SCRIPTS_SANDBOX=off)") : "—"],
          ["server time zone", c.time_zone],
          ["https only", c.https_only ? "yes" : "no"],
          ["local URLs allowed", c.allow_local_urls ? "yes" : "no"],
          ["debug", c.debug ? "ON" : "off"],
        ]),
      );
    } else {
      replace(config, h("div", { class: "error" }, errorText(cfg.reason)));
    }
  }

  return { load };
}
