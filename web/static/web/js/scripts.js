// Scripts tab: the list (search, folder filter) with run buttons, the quick "new script" dialog
// (name, optional folder and template, then the editor opens), and one script's page
// (script-detail.js).
import { api, errorText } from "./api.js";
import { closeModal, confirmAction, field, h, modalForm, openModal, replace, toast } from "./dom.js";
import { ago, countdown, formatDate } from "./format.js";
import { soon, subscribe } from "./live.js";
import { envState } from "./script-env.js";
import { runState } from "./script-runs.js";
import { scheduleSummary } from "./script-schedule.js";
import { showScriptDetail } from "./script-detail.js";

function folderOf(scripts) {
  return [...new Set(scripts.map((s) => s.folder).filter(Boolean))].sort();
}

export function createScriptsTab(panel, ctx) {
  const state = { view: "list", scriptId: null, scripts: [], detail: null };
  const search = h("input", { type: "search", id: "script-search", placeholder: "search name, slug or folder", autocomplete: "off" });
  const folderFilter = h("select", { id: "script-folder-filter", "aria-label": "folder filter" }, h("option", { value: "" }, "all folders"));
  const listStatus = h("div", { class: "panel-status" });
  const tbody = h("tbody");
  const listView = h(
    "div",
    { id: "scripts-list" },
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> scripts"),
      search,
      folderFilter,
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", onclick: () => loadList() }, "refresh"),
      h("button", { type: "button", class: "btn", id: "create-from-template", onclick: () => openCreate({ fromTemplate: true }) }, "New from template"),
      h("button", { type: "button", class: "btn btn-primary", id: "create-script", onclick: () => openCreate() }, "+ New Script"),
    ),
    listStatus,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "table", id: "scripts-table" },
        h("thead", {}, h("tr", {}, ["last run", "name", "folder", "schedule", "environment", "next run", ""].map((t) => h("th", {}, t)))),
        tbody,
      ),
    ),
  );
  const detailView = h("div", { id: "script-detail", hidden: true });
  replace(panel, listView, detailView);
  search.addEventListener("input", () => render());
  folderFilter.addEventListener("change", () => render());

  function lastRun(run) {
    if (!run) return h("span", { class: "muted" }, "never");
    return h("span", { title: formatDate(run.queued_at) }, runState(run.state), h("span", { class: "muted" }, ` ${ago(run.finished_at || run.started_at || run.queued_at)}`));
  }

  function row(script) {
    const next = (script.next_runs || [])[0];
    return h(
      "tr",
      { class: `script-row${script.enabled ? "" : " row-disabled"}`, dataset: { scriptId: script.id } },
      h("td", {}, lastRun(script.last_run)),
      h("td", { class: "cell-name" }, h("a", { href: `#scripts/${script.id}`, class: "script-name" }, script.name), h("div", { class: "muted small" }, script.slug)),
      h("td", {}, script.folder || h("span", { class: "muted" }, "—")),
      h("td", {}, scheduleSummary(script.schedule), script.enabled ? null : h("span", { class: "muted" }, " (disabled)")),
      h("td", {}, envState(script.environment?.state)),
      h("td", {}, next && script.enabled ? countdown(next) : h("span", { class: "muted" }, "—")),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "btn btn-small", dataset: { action: "run" }, onclick: () => runNow(script) }, "▶ run"),
        h("button", { type: "button", class: "btn btn-small btn-danger", dataset: { action: "delete" }, onclick: () => remove(script) }, "delete"),
      ),
    );
  }

  function render() {
    const words = search.value.trim().toLowerCase();
    const folder = folderFilter.value;
    const shown = state.scripts.filter(
      (s) => (!folder || s.folder === folder) && (!words || [s.name, s.slug, s.folder].some((v) => String(v || "").toLowerCase().includes(words))),
    );
    const filtered = words || folder;
    replace(
      tbody,
      shown.length
        ? shown.map(row)
        : h("tr", {}, h("td", { colspan: 7, class: "empty" }, filtered ? "No script matches." : "No scripts yet. Press + New Script: a name is all it takes.")),
    );
    listStatus.textContent = filtered ? `${shown.length} of ${state.scripts.length} script(s)` : `${state.scripts.length} script(s)`;
  }

  async function loadList({ quiet = false } = {}) {
    if (!quiet) {
      listStatus.textContent = "loading…";
      listStatus.className = "panel-status";
    }
    try {
      const data = await api.scripts();
      state.scripts = data.scripts || [];
      const folders = folderOf(state.scripts);
      const chosen = folderFilter.value;
      replace(folderFilter, h("option", { value: "" }, "all folders"), folders.map((f) => h("option", { value: f }, f)));
      folderFilter.value = folders.includes(chosen) ? chosen : "";
      render();
    } catch (err) {
      listStatus.textContent = errorText(err);
      listStatus.className = "panel-status error";
    }
  }

  async function runNow(script) {
    try {
      const run = await api.runScript(script.id);
      toast(`Script '${script.name}': run #${run.id} ${run.state}.`, "success");
      ctx.print(`script ${script.id}: run ${run.id} ${run.state}`);
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    loadList();
  }

  async function remove(script) {
    const ok = await confirmAction(`Delete script '${script.name}' with its environment and run history?`);
    if (!ok) return;
    try {
      await api.deleteScript(script.id);
      if (state.scriptId === script.id) forgetDetail();
      toast(`Script '${script.name}' deleted.`, "success");
      ctx.print(`script ${script.id} deleted`);
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    loadList();
  }

  /**
   * The PRD's quick creation: a name, an optional folder and an optional built-in template (with
   * a vault secret for each of its secret variables); the editor opens right after.
   */
  function openCreate({ fromTemplate = false } = {}) {
    const name = h("input", { autocomplete: "off", maxlength: 255, required: true, placeholder: "Hello World" });
    const folder = h("input", { autocomplete: "off", list: "new-script-folders", placeholder: "optional, e.g. backups" });
    const template = h("select", { id: "script-template" }, h("option", { value: "" }, "empty script"));
    const templateHelp = h("div", { class: "hint", id: "script-template-help" });
    const secretFields = h("div", { id: "script-template-secrets" });
    let templates = [];
    let secrets = [];
    const chosen = () => templates.find((t) => t.name === template.value);

    function showTemplate() {
      const picked = chosen();
      templateHelp.textContent = picked ? picked.description : "";
      replace(
        secretFields,
        (picked?.variables || [])
          .filter((v) => v.secret_type)
          .map((v) => {
            const matching = secrets.filter((s) => s.type === v.secret_type);
            const select = h(
              "select",
              { dataset: { variable: v.name } },
              matching.map((s) => h("option", { value: s.name }, s.name)),
              h("option", { value: "" }, matching.length ? "none: add it later" : `no ${v.secret_type} secret yet: add one in Secrets`),
            );
            return field(`${v.name} (a ${v.secret_type} secret)`, `secret-${v.name}`, select, v.help);
          }),
      );
    }
    template.addEventListener("change", showTemplate);
    (async () => {
      try {
        [templates, secrets] = await Promise.all([api.scriptTemplates().then((d) => d.templates || []), ctx.secrets().catch(() => [])]);
        replace(template, h("option", { value: "" }, "empty script"), templates.map((t) => h("option", { value: t.name }, t.title)));
        if (fromTemplate && templates.length) template.value = templates[0].name;
        showTemplate();
      } catch (err) {
        templateHelp.textContent = `Templates did not load: ${errorText(err)}`;
      }
    })();

    const form = modalForm({
      id: "script-create-form",
      fields: [
        field("name", "name", name, "Its safe name (hello-world) is made from this."),
        field("folder", "folder", folder),
        field("start from", "template", template),
        templateHelp,
        secretFields,
        h("datalist", { id: "new-script-folders" }, folderOf(state.scripts).map((f) => h("option", { value: f }))),
      ],
      submitLabel: "create",
      onSubmit: async () => {
        const data = { name: name.value, folder: folder.value.trim() };
        if (template.value) {
          data.template = template.value;
          data.env = [...secretFields.querySelectorAll("select")].filter((s) => s.value).map((s) => ({ name: s.dataset.variable, secret: s.value }));
        }
        const created = await api.createScript(data);
        closeModal();
        toast(`Script '${created.name}' created.`, "success");
        ctx.print(`script ${created.id} '${created.name}' (${created.slug}) created${data.template ? ` from template ${data.template}` : ""}`);
        ctx.navigate(`scripts/${created.id}`);
      },
    });
    openModal(fromTemplate ? "new script from a template" : "new script", form);
    if (fromTemplate) template.focus();
  }

  async function showDetail(id) {
    listView.hidden = true;
    detailView.hidden = false;
    const previous = state.scriptId;
    state.view = "detail";
    // The script being edited stays on screen (hidden behind the list) with its unsaved edits;
    // opening another one asks before they are dropped.
    if (state.detail?.isDirty()) {
      if (previous === id) return;
      const drop = await confirmAction(`Script #${previous} has unsaved changes. Discard them?`, { confirmLabel: "discard changes" });
      if (!drop) return ctx.navigate(`scripts/${previous}`);
    }
    state.scriptId = id;
    state.detail = null;
    state.detail = await showScriptDetail(detailView, ctx, id, { isCurrent: () => state.view === "detail" && state.scriptId === id });
  }

  /** Drop the script page kept behind the list (its script is gone). */
  function forgetDetail() {
    replace(detailView);
    state.scriptId = null;
    state.detail = null;
  }

  function showList() {
    state.view = "list";
    detailView.hidden = true;
    listView.hidden = false;
    return loadList();
  }

  // Live: a script or a run changing reloads the list while it is on screen (the script's own
  // page follows its runs and environment itself).
  const reloadList = soon(() => ctx.isVisible("scripts") && state.view === "list" && loadList({ quiet: true }), 200);
  subscribe(["script", "run"], reloadList, reloadList);

  return {
    load: () => (state.view === "detail" ? showDetail(state.scriptId) : loadList()),
    /** The script page's save or run (keyboard shortcuts); false when no script is open. */
    scriptAction(name) {
      if (state.view !== "detail" || !state.detail) return false;
      state.detail[name]();
      return true;
    },
    showList,
    showDetail,
  };
}
