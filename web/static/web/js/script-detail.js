// One script's page: the code and requirements editors, its settings and schedule, its
// environment, the run button, its runs and its versions. Save is PATCH /api/scripts/{id} with
// the fields that changed and the version the edit started from (`base_version`): a newer
// version saved elsewhere meanwhile answers 409, shown with a way to reload. The code and
// requirements save themselves a second after the last keystroke; settings on save.
import { api, errorText } from "./api.js";
import { clearFormErrors, confirmAction, h, replace, showFormErrors, toast } from "./dom.js";
import { createEnvironmentBox } from "./script-env.js";
import { createRunsPanel } from "./script-runs.js";
import { createScheduleBuilder } from "./script-schedule.js";
import { createScriptSettings } from "./script-settings.js";
import { createVersionsPanel } from "./script-versions.js";

const STARTER = 'print("Hello from TeckoChecker")\n';
// Auto-save: this long after the last edit of the code or requirements.
const AUTOSAVE_MS = 1000;
const AUTOSAVED = ["code", "requirements"];

// Leaving the page with unsaved edits asks first; the check belongs to the script on screen.
let hasUnsavedEdits = () => false;
window.addEventListener("beforeunload", (event) => {
  if (hasUnsavedEdits()) event.preventDefault();
});

async function loadEverything(ctx, id) {
  // The editor bundle is big next to the rest of the page: it loads when a script is first opened.
  const [script, pythons, secrets, scripts, editor] = await Promise.allSettled([api.script(id), api.pythons(), ctx.secrets(), api.scripts(), import("./editor.js")]);
  if (script.status === "rejected") throw script.reason;
  if (editor.status === "rejected") throw new Error(`The code editor did not load (${errorText(editor.reason)}). Reload the page.`);
  const folders = scripts.status === "fulfilled" ? [...new Set((scripts.value.scripts || []).map((s) => s.folder).filter(Boolean))].sort() : [];
  return {
    script: script.value,
    pythons: pythons.status === "fulfilled" ? pythons.value.pythons || [] : [],
    secrets: secrets.status === "fulfilled" ? secrets.value : [],
    folders,
    createEditor: editor.value.createEditor,
  };
}

function section(title, ...children) {
  return h("section", { class: "script-section" }, h("h3", {}, `> ${title}`), ...children);
}

/** A slot for an editor, with its own error line like a form field. */
function editorField(name, editor, hint) {
  return h(
    "div",
    { class: "field editor-field", dataset: { field: name }, id: `script-${name}` },
    editor.dom,
    hint ? h("div", { class: "hint" }, hint) : null,
    h("div", { class: "field-error", dataset: { errorFor: name }, role: "alert" }),
  );
}

/** The line a server message points at ("Line 3: invalid syntax"), or null. */
function lineOf(message) {
  const match = /\bline (\d+)/i.exec(String(message || ""));
  return match ? Number(match[1]) : null;
}

/**
 * Render script `id` into `container`. `isCurrent()` says whether the page still shows it (the
 * user may have moved on while it loaded). Resolves to { isDirty() } once shown (null when it
 * could not load; the error is shown in place).
 */
export async function showScriptDetail(container, ctx, id, { isCurrent = () => true } = {}) {
  const back = h("a", { href: "#scripts", class: "btn btn-small" }, "« all scripts");
  replace(container, h("div", { class: "panel-status" }, `loading script #${id}…`));
  let loaded;
  try {
    loaded = await loadEverything(ctx, id);
  } catch (err) {
    replace(container, h("div", { class: "toolbar" }, back), h("div", { class: "panel-status error" }, err.status === 404 ? `Script #${id}: ${errorText(err)}` : errorText(err)));
    return null;
  }
  if (!isCurrent()) return null;
  let script = loaded.script;
  const { createEditor } = loaded;
  let savedBody = {};
  let version = script.version;
  let saving = null;
  let conflict = null;
  let autosaveTimer = null;

  const dirtyMark = h("span", { class: "dirty", id: "script-dirty", hidden: true }, "● unsaved");
  const saveState = h("span", { class: "save-state muted", id: "script-save-state", role: "status", dataset: { state: "saved" } });
  const setState = (state, text) => {
    saveState.dataset.state = state;
    saveState.textContent = text ?? { saved: `✓ saved (v${version})`, saving: "saving…", unsaved: "" }[state] ?? "";
    saveState.className = `save-state ${state === "conflict" || state === "error" ? "error" : "muted"}`;
  };
  /** The fields (of `keys`, or all) that differ from what the server holds. */
  function pending(keys = null) {
    const now = body();
    return Object.fromEntries(Object.entries(now).filter(([key, value]) => (!keys || keys.includes(key)) && JSON.stringify(value) !== JSON.stringify(savedBody[key])));
  }
  const changed = () => {
    const dirty = Object.keys(pending()).length > 0;
    dirtyMark.hidden = !dirty;
    if (!saving && !conflict) setState(dirty ? "unsaved" : "saved");
    scheduleAutosave();
  };
  function scheduleAutosave() {
    clearTimeout(autosaveTimer);
    if (conflict || !Object.keys(pending(AUTOSAVED)).length) return;
    autosaveTimer = setTimeout(() => {
      if (form.isConnected) save({ only: AUTOSAVED, auto: true });
    }, AUTOSAVE_MS);
  }
  const code = createEditor({ doc: script.code || "", language: "python", label: "script code", hint: STARTER, onChange: changed, onSave: () => save(), onRun: () => run() });
  const requirements = createEditor({ doc: script.requirements || "", language: "text", label: "requirements", hint: "requests==2.32.3\n# one pip requirement per line", onChange: changed, onSave: () => save() });
  const settings = createScriptSettings(script, { ...loaded, onChange: changed });
  const schedule = createScheduleBuilder(script.schedule, { onChange: changed });
  const environment = createEnvironmentBox(ctx, id, script.environment, { onReady: () => runs.load() });
  const runs = createRunsPanel(ctx, id, { onFinished: () => refreshEnvironment() });
  const versions = createVersionsPanel(ctx, id, { onRestored: (fresh) => takeServerCode(fresh) });
  const conflictText = h("div", { class: "conflict-message" });
  const conflictBox = h(
    "div",
    { class: "conflict", id: "script-conflict", role: "alert", hidden: true },
    conflictText,
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "button", class: "btn btn-primary", id: "conflict-reload", onclick: () => reloadCode() }, "reload their version (drops my edits to the code)"),
      h("button", { type: "button", class: "btn", id: "conflict-overwrite", onclick: () => overwrite() }, "save mine over theirs"),
    ),
  );
  function body() {
    return { ...settings.value(), code: code.value, requirements: requirements.value, schedule: schedule.value() };
  }

  const title = h("span", { id: "script-title" }, script.name);
  const slug = h("span", { class: "muted", id: "script-slug" }, ` ${script.slug}`);
  const saveButton = h("button", { type: "submit", class: "btn", id: "script-save", title: "Ctrl+S" }, "save");
  const runButton = h("button", { type: "button", class: "btn btn-primary", id: "script-run", title: "Ctrl+Enter", onclick: () => run() }, "▶ run");
  const form = h(
    "form",
    { class: "script-form", id: "script-form", novalidate: true },
    h(
      "div",
      { class: "toolbar" },
      back,
      h("h2", { class: "detail-title" }, title, slug),
      h("div", { class: "spacer" }),
      saveState,
      dirtyMark,
      saveButton,
      runButton,
      h("button", { type: "button", class: "btn btn-small btn-danger", id: "script-delete", onclick: () => remove() }, "delete"),
    ),
    conflictBox,
    h("div", { class: "form-error", role: "alert" }),
    h(
      "div",
      { class: "script-layout" },
      h(
        "div",
        { class: "script-main" },
        section("code", editorField("code", code, "Python. Saved a second after you stop typing (each save a version); Ctrl+S saves everything now, Ctrl+Enter saves and runs; Tab indents (Esc, then Tab, leaves the editor).")),
        section("requirements", editorField("requirements", requirements, "pip requirement lines, checked before anything is installed.")),
        environment.dom,
        runs.dom,
        versions.dom,
      ),
      h(
        "div",
        { class: "script-side" },
        section("script", settings.general),
        section("schedule", schedule.dom),
        section("limits", settings.limits),
        section("environment variables", settings.env),
        section("notifications", settings.notify),
      ),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  replace(container, form);
  savedBody = body();
  setState("saved");
  runs.load();
  versions.load();

  async function refreshEnvironment() {
    try {
      environment.update((await api.script(id)).environment);
    } catch (err) {
      /* the runs panel shows what went wrong with the server */
    }
  }

  /**
   * Errors by field, and a bad line underlined in its editor. An explicit save puts the cursor on
   * that line; an auto-save does not, because it answers while the user may still be typing, and
   * moving the cursor then would put their next keys on another line.
   */
  function showSaveError(err, { auto = false } = {}) {
    showFormErrors(form, err);
    const errors = err.errors || {};
    const reveal = !auto;
    const codeLine = err.body?.line ?? (errors.code ? lineOf(errors.code) : null);
    if (codeLine) {
      code.markError(codeLine, err.detail, { reveal });
      const slot = form.querySelector('[data-error-for="code"]');
      if (!slot.textContent) slot.textContent = err.detail;
      slot.closest(".field").classList.add("has-error");
      form.querySelector(".form-error").textContent = "";
    }
    const requirementsLine = errors.requirements ? lineOf(errors.requirements) : null;
    if (requirementsLine) requirements.markError(requirementsLine, String(errors.requirements), { reveal });
  }

  /**
   * Save what changed (of `only`, or everything); resolves true when saved. One save at a time:
   * a save asked for while one is going runs after it. `auto` saves stay quiet on success.
   */
  function save({ only = null, auto = false } = {}) {
    if (saving) return saving.then(() => save({ only, auto }));
    if (conflict) return Promise.resolve(false); // the user chooses first
    const sent = pending(only);
    if (!Object.keys(sent).length) return Promise.resolve(true);
    clearTimeout(autosaveTimer);
    let ok = false;
    saving = (async () => {
      clearFormErrors(form);
      code.clearErrors();
      requirements.clearErrors();
      saveButton.disabled = true;
      setState("saving");
      try {
        script = await api.updateScript(id, { ...sent, base_version: version });
        version = script.version;
        Object.assign(savedBody, sent);
        title.textContent = script.name;
        slug.textContent = ` ${script.slug}`;
        environment.update(script.environment);
        if ("code" in sent || "requirements" in sent) versions.load();
        if (!auto) {
          toast(`Script '${script.name}' saved.`, "success");
          ctx.print(`script ${script.id} '${script.name}' saved (version ${script.version})`);
        }
        ok = true;
        return true;
      } catch (err) {
        if (err.status === 409 && err.body?.current_version !== undefined) showConflict(err);
        else {
          showSaveError(err, { auto });
          setState("error", `✗ not saved: ${errorText(err)}`);
          if (!auto) ctx.print(`script ${id}: ${errorText(err)}`, "error");
        }
        return false;
      } finally {
        saveButton.disabled = false;
        saving = null;
        dirtyMark.hidden = !Object.keys(pending()).length;
        if (ok) {
          setState(dirtyMark.hidden ? "saved" : "unsaved");
          scheduleAutosave(); // edits typed while it was saving
        }
      }
    })();
    return saving;
  }

  function showConflict(err) {
    conflict = err.body;
    clearTimeout(autosaveTimer);
    conflictText.textContent = err.detail;
    conflictBox.hidden = false;
    setState("conflict", `✗ conflict: version ${conflict.current_version} is newer`);
    ctx.print(`script ${id}: ${err.detail}`, "error");
  }

  function clearConflict() {
    conflict = null;
    conflictBox.hidden = true;
  }

  /** Show the server's code and requirements (after a restore, or to resolve a conflict). */
  function takeServerCode(fresh) {
    clearConflict();
    version = fresh.version;
    savedBody.code = fresh.code;
    savedBody.requirements = fresh.requirements;
    if (code.value !== fresh.code) code.value = fresh.code;
    if (requirements.value !== fresh.requirements) requirements.value = fresh.requirements;
    changed();
  }

  async function reloadCode() {
    try {
      takeServerCode(await api.script(id));
      versions.load();
      ctx.print(`script ${id}: reloaded version ${version}`);
    } catch (err) {
      toast(errorText(err), "error");
    }
  }

  /** Keep my edits: save them as the newest version over the one that conflicted. */
  function overwrite() {
    version = conflict.current_version;
    clearConflict();
    return save();
  }

  /** Runs what the editor shows: unsaved changes are saved first. */
  async function run() {
    if (runButton.disabled) return; // one click, one run (Ctrl+Enter repeats fast)
    runButton.disabled = true;
    try {
      if (!dirtyMark.hidden && !(await save())) return;
      const started = await api.runScript(id);
      ctx.print(`script ${id}: run ${started.id} ${started.state}`);
      await runs.load();
      runs.follow(started);
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    } finally {
      runButton.disabled = false;
    }
  }

  async function remove() {
    const ok = await confirmAction(`Delete script '${script.name}' with its environment and run history?`);
    if (!ok) return;
    try {
      await api.deleteScript(id);
      replace(container); // ends its polling: nothing of it stays on the page
      toast(`Script '${script.name}' deleted.`, "success");
      ctx.print(`script ${id} deleted`);
      ctx.navigate("scripts");
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
  }

  const isDirty = () => form.isConnected && !dirtyMark.hidden;
  hasUnsavedEdits = isDirty;
  if (!script.code) code.focus();
  return { isDirty, save: () => save(), run: () => run() };
}
