// A script's run history and the output of one run. A queued or running run's output streams
// in as it is written (GET /api/runs/{id}/stream); if that stream fails, the run is polled once
// a second until it ends, and the panel says so. New and finished runs refresh the list live.
import { STALE, api, errorText, newestOnly } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { ago, duration, formatDate } from "./format.js";
import { followRun, soon, subscribeWhile } from "./live.js";

export const ACTIVE_RUN_STATES = new Set(["queued", "running"]);
const RUN_STATES = ["queued", "running", "succeeded", "failed", "timed_out", "killed", "cancelled"];
const PAGE = 20;
const POLL_MS = 1000;

export function runState(state) {
  return h("span", { class: `run-state run-${state}` }, h("span", { class: `dot dot-run-${state}`, "aria-hidden": "true" }), " ", String(state).replaceAll("_", " "));
}

function megabytes(kb) {
  return kb == null ? "—" : `${(kb / 1024).toFixed(1)} MB`;
}

function runFacts(run) {
  return [
    `run #${run.id}`,
    run.trigger,
    run.exit_code != null ? `exit ${run.exit_code}` : null,
    run.duration_seconds != null ? duration(run.duration_seconds) : null,
    run.peak_memory_kb != null ? `${megabytes(run.peak_memory_kb)} peak` : null,
    run.cpu_seconds != null ? `${Number(run.cpu_seconds).toFixed(2)} s CPU` : null,
    run.started_at ? `started ${formatDate(run.started_at)}` : `queued ${formatDate(run.queued_at)}`,
  ]
    .filter(Boolean)
    .join(" · ");
}

/**
 * The runs of script `scriptId`. `onFinished(run)` runs when a followed run ends.
 * Returns { dom, load(), follow(run) }: follow shows a run's output and polls it while it is active.
 */
export function createRunsPanel(ctx, scriptId, { onFinished } = {}) {
  const state = { offset: 0, total: 0, selected: null, timer: null, stopStream: null };
  const status = h("div", { class: "panel-status" });
  const search = h("input", { type: "search", id: "runs-search", placeholder: "search output", autocomplete: "off", size: 16 });
  const stateFilter = h(
    "select",
    { id: "runs-state", "aria-label": "run state" },
    h("option", { value: "" }, "all states"),
    RUN_STATES.map((s) => h("option", { value: s }, s.replace("_", " "))),
  );
  let searchTimer = null;
  const newest = newestOnly();
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => load(), 300);
  });
  stateFilter.addEventListener("change", () => load());
  const tbody = h("tbody");
  const more = h("button", { type: "button", class: "btn btn-small", hidden: true, onclick: () => load({ append: true }) }, "load more");
  const outputHead = h("div", { class: "run-head", id: "run-head" });
  const output = h("pre", { class: "run-output", id: "run-output", tabindex: "0" });
  const outputBox = h("div", { class: "run-view", id: "run-view", hidden: true }, outputHead, output);
  const dom = h(
    "div",
    { class: "runs", id: "script-runs" },
    h(
      "div",
      { class: "toolbar" },
      h("h3", {}, "> runs"),
      h("div", { class: "spacer" }),
      search,
      stateFilter,
      h("button", { type: "button", class: "btn btn-small", onclick: () => load() }, "refresh"),
    ),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table compact", id: "runs-table" },
        h("thead", {}, h("tr", {}, ["state", "run", "trigger", "queued", "duration", "exit", "peak memory", ""].map((t) => h("th", {}, t)))),
        tbody,
      ),
    ),
    more,
    outputBox,
  );

  function row(run) {
    const active = ACTIVE_RUN_STATES.has(run.state);
    return h(
      "tr",
      { class: `run-row${state.selected === run.id ? " selected" : ""}`, dataset: { runId: run.id }, onclick: () => follow(run) },
      h("td", {}, runState(run.state)),
      h("td", {}, h("a", { href: `#scripts/${scriptId}`, onclick: (e) => (e.preventDefault(), follow(run)) }, `#${run.id}`)),
      h("td", {}, run.trigger),
      h("td", { class: "cell-date", title: formatDate(run.queued_at) }, ago(run.queued_at)),
      h("td", {}, run.duration_seconds != null ? duration(run.duration_seconds) : "—"),
      h("td", {}, run.exit_code ?? "—"),
      h("td", {}, megabytes(run.peak_memory_kb)),
      h("td", { class: "actions" }, active ? h("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "cancel" }, onclick: (e) => (e.stopPropagation(), cancel(run)) }, "cancel") : null),
    );
  }

  async function load({ append = false } = {}) {
    if (!append) state.offset = 0;
    try {
      const filters = { search: search.value.trim(), state: stateFilter.value };
      const data = await newest(api.scriptRuns(scriptId, { limit: PAGE, offset: state.offset, ...filters }));
      if (data === STALE) return;
      const runs = data.runs || [];
      state.total = data.total ?? runs.length;
      const rows = runs.map(row);
      if (append) tbody.append(...rows);
      else {
        const none = filters.search || filters.state ? "No run matches." : "No runs yet. Press run.";
        replace(tbody, rows.length ? rows : h("tr", {}, h("td", { colspan: 8, class: "empty" }, none)));
      }
      state.offset += runs.length;
      more.hidden = state.offset >= state.total;
      status.className = "panel-status";
      status.textContent = `${state.total} run(s)${filters.search || filters.state ? " match" : ""}`;
      if (!state.selected && runs.length) follow(runs[0], { quiet: true });
    } catch (err) {
      status.className = "panel-status error";
      status.textContent = errorText(err);
    }
  }

  function show(run) {
    const atBottom = output.scrollHeight - output.scrollTop - output.clientHeight < 30;
    replace(
      outputHead,
      h("div", { class: "run-title" }, runState(run.state), h("span", { class: "muted" }, ` ${runFacts(run)}`)),
      ACTIVE_RUN_STATES.has(run.state) ? h("button", { type: "button", class: "btn btn-small btn-danger", id: "run-cancel", onclick: () => cancel(run) }, "cancel run") : null,
      run.message ? h("div", { class: `run-message run-${run.state}`, id: "run-message" }, run.message) : null,
    );
    const text = run.output ?? "";
    if (output.textContent !== text) output.textContent = text;
    if (!text) output.textContent = ACTIVE_RUN_STATES.has(run.state) ? "(waiting for output…)" : "(no output)";
    if (run.output_truncated) output.appendChild(h("span", { class: "run-truncated" }, "\n[output truncated: the run wrote more than the size cap]"));
    if (atBottom) output.scrollTop = output.scrollHeight;
    for (const tr of tbody.querySelectorAll("tr.run-row")) tr.classList.toggle("selected", Number(tr.dataset.runId) === run.id);
  }

  async function poll(id) {
    clearTimeout(state.timer);
    if (!dom.isConnected || state.selected !== id) return;
    let run;
    try {
      run = await api.run(id);
    } catch (err) {
      status.className = "panel-status error";
      status.textContent = errorText(err);
      if (err.status !== 404) state.timer = setTimeout(() => poll(id), POLL_MS * 3); // gone: stop
      return;
    }
    if (state.selected !== id) return;
    show(run);
    if (ACTIVE_RUN_STATES.has(run.state)) {
      state.timer = setTimeout(() => poll(id), POLL_MS);
    } else {
      const old = tbody.querySelector(`tr[data-run-id="${run.id}"]`);
      if (old) old.replaceWith(row(run));
      if (onFinished) onFinished(run);
    }
  }

  /** Stream an active run's output into the view; at its end (or if the stream fails) fall
   * back to `poll`, which shows the finished run and updates its row. */
  function stream(run) {
    if (state.stopStream) state.stopStream();
    state.stopStream = null;
    clearTimeout(state.timer);
    if (!ACTIVE_RUN_STATES.has(run.state)) return;
    const current = { ...run, output: "" }; // the stream sends the output from its start
    const still = () => dom.isConnected && state.selected === run.id;
    state.stopStream = followRun(run.id, {
      onOutput: (text) => {
        if (!still()) return state.stopStream && state.stopStream();
        current.output += text;
        show(current);
      },
      onState: (runState) => {
        if (!still()) return;
        current.state = runState;
        show(current);
      },
      onEnd: () => {
        state.stopStream = null;
        if (still()) poll(run.id);
      },
      onDrop: () => {
        state.stopStream = null;
        if (!still()) return;
        status.className = "panel-status error";
        status.textContent = `The live output of run #${run.id} was lost; checking it once a second instead.`;
        poll(run.id);
      },
    });
  }

  /** Show `run`'s output (fetched with it) and keep it current while it is queued or running. */
  function follow(run, { quiet = false } = {}) {
    state.selected = run.id;
    outputBox.hidden = false;
    show(run);
    if (ACTIVE_RUN_STATES.has(run.state)) stream(run);
    else poll(run.id);
    if (!quiet) outputBox.scrollIntoView({ block: "nearest" });
  }

  // A run of this script queued, started or ended: the list shows it.
  const reload = soon(() => load(), 200);
  subscribeWhile(dom, ["run"], (kind, data) => data.script === scriptId && reload(), reload);

  async function cancel(run) {
    try {
      await api.cancelRun(run.id);
      ctx.print(`run ${run.id} cancelled`);
      toast(`Run #${run.id} cancelled.`, "success");
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    await load();
    if (state.selected === run.id && !state.stopStream) poll(run.id);
  }

  return { dom, load, follow };
}
