// A script's environment (its uv-built virtualenv): state, installer error, disk use, and the
// check and rebuild buttons. Its state changes arrive live (live.js); while the live stream is
// down and a build is going on, it is polled every 2 s.
import { api, errorText } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { ago, formatDate } from "./format.js";
import { isLive, subscribeWhile } from "./live.js";

const BUSY = new Set(["creating", "installing"]);
const POLL_MS = 2000;

function size(bytes) {
  if (bytes == null) return "—";
  if (bytes < 1024 * 1024) return `${Math.ceil(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function envState(state) {
  const value = state || "unknown";
  return h("span", { class: `env-state env-${value}` }, value);
}

/** Returns { dom, update(environment) }; `onReady()` runs when a build the box watched ends. */
export function createEnvironmentBox(ctx, scriptId, environment, { onReady } = {}) {
  let timer = null;
  let current = environment || {};
  const facts = h("div", { class: "env-facts", id: "env-facts" });
  const checkResult = h("div", { class: "env-check", id: "env-check-result", "aria-live": "polite" });
  const check = h("button", { type: "button", class: "btn btn-small", id: "env-check", onclick: () => runCheck() }, "check");
  const rebuild = h("button", { type: "button", class: "btn btn-small", id: "env-rebuild", onclick: () => runRebuild() }, "rebuild");
  const dom = h(
    "div",
    { class: "env-box", id: "script-env" },
    h("div", { class: "toolbar" }, h("h3", {}, "> environment"), h("div", { class: "spacer" }), check, rebuild),
    facts,
    checkResult,
  );

  function update(env) {
    current = env || {};
    const busy = BUSY.has(current.state);
    replace(
      facts,
      h(
        "dl",
        { class: "info-grid" },
        h("dt", {}, "state"),
        h("dd", { id: "env-state" }, envState(current.state), busy ? h("span", { class: "muted" }, " …") : null),
        h("dt", {}, "python"),
        h("dd", {}, current.python_version || "—"),
        h("dt", {}, "disk"),
        h("dd", {}, size(current.disk_bytes)),
        h("dt", {}, "built"),
        h("dd", { title: formatDate(current.built_at) }, current.built_at ? ago(current.built_at) : "—"),
      ),
      current.error ? h("pre", { class: "env-error", id: "env-error" }, current.error) : null,
    );
    rebuild.disabled = busy;
    clearTimeout(timer);
    if (busy && !isLive()) timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    if (!dom.isConnected) return;
    const wasBusy = BUSY.has(current.state);
    try {
      update(await api.scriptEnvironment(scriptId));
    } catch (err) {
      replace(checkResult, h("span", { class: "error" }, errorText(err)));
      if (err.status !== 404) timer = setTimeout(poll, POLL_MS * 3); // the script is gone: stop
      return;
    }
    if (wasBusy && !BUSY.has(current.state) && onReady) onReady(current);
  }

  async function runCheck() {
    check.disabled = true;
    replace(checkResult, h("span", { class: "muted" }, "checking…"));
    try {
      const result = await api.checkEnvironment(scriptId);
      const problems = result.problems || [];
      replace(
        checkResult,
        result.ok
          ? h("span", { class: "ok" }, `check passed${result.python_version ? `: Python ${result.python_version} starts` : ""}, every requirement is installed`)
          : h("ul", { class: "error" }, (problems.length ? problems : ["the check failed"]).map((p) => h("li", {}, p))),
      );
    } catch (err) {
      replace(checkResult, h("span", { class: "error" }, errorText(err)));
    } finally {
      check.disabled = false;
    }
  }

  async function runRebuild() {
    rebuild.disabled = true;
    replace(checkResult);
    try {
      const result = await api.rebuildEnvironment(scriptId);
      ctx.print(`script ${scriptId}: environment rebuild started`);
      toast("Environment rebuild started.", "success");
      update(result && result.state ? result : { ...current, state: "creating", error: "" });
    } catch (err) {
      toast(errorText(err), "error");
      rebuild.disabled = false;
    }
  }

  subscribeWhile(dom, ["script"], (kind, data) => data.id === scriptId && poll(), () => BUSY.has(current.state) && poll());
  update(current);
  return { dom, update };
}
