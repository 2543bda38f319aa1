// A script's settings beside the editor: name and folder, Python version, limits, network,
// environment variables (plain, or a vault secret by name), overlap policy and notifications.
import { field, h } from "./dom.js";

function intOrRaw(text) {
  const trimmed = String(text).trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

function pythonOptions(pythons, current) {
  const options = pythons.map((p) => h("option", { value: p.version }, `Python ${p.version}${p.default ? " (default)" : ""}`));
  if (current && !pythons.some((p) => p.version === current)) {
    // "3.12" is a valid choice too: it means the newest 3.12.x found.
    const match = pythons.find((p) => p.version.startsWith(`${current}.`));
    options.unshift(h("option", { value: current }, `Python ${current} ${match ? `(now ${match.version})` : "(not found on this machine)"}`));
  }
  if (!pythons.length && !current) options.push(h("option", { value: "" }, "— no interpreter found —"));
  return options;
}

/** One environment variable row: name, kind (plain / secret), then a value or a secret's name. */
function envRow(entry, secrets, onChange, onRemove) {
  const isSecret = entry && "secret" in entry;
  const name = h("input", { class: "env-name", autocomplete: "off", spellcheck: "false", placeholder: "NAME", value: entry?.name || "", "aria-label": "variable name" });
  const kind = h(
    "select",
    { class: "env-kind", "aria-label": "kind" },
    h("option", { value: "plain" }, "plain"),
    h("option", { value: "secret" }, "secret"),
  );
  kind.value = isSecret ? "secret" : "plain";
  const value = h("input", { class: "env-value", autocomplete: "off", spellcheck: "false", placeholder: "value", value: isSecret ? "" : entry?.value || "", "aria-label": "value" });
  const names = secrets.map((s) => s.name);
  if (isSecret && entry.secret && !names.includes(entry.secret)) names.unshift(entry.secret);
  const secret = h(
    "select",
    { class: "env-secret", "aria-label": "vault secret" },
    names.length ? names.map((n) => h("option", { value: n }, n)) : h("option", { value: "" }, "— no secret in the vault —"),
  );
  if (isSecret) secret.value = entry.secret;
  const sync = () => {
    value.hidden = kind.value !== "plain";
    secret.hidden = kind.value !== "secret";
  };
  const row = h(
    "div",
    { class: "env-row" },
    name,
    kind,
    value,
    secret,
    h("button", { type: "button", class: "btn btn-small btn-danger", "aria-label": "remove variable", onclick: () => onRemove(row) }, "x"),
  );
  kind.addEventListener("change", () => {
    sync();
    onChange();
  });
  for (const control of [name, value, secret]) control.addEventListener(control.tagName === "SELECT" ? "change" : "input", onChange);
  sync();
  row.read = () => {
    const entryName = name.value.trim();
    return kind.value === "secret" ? { name: entryName, secret: secret.value } : { name: entryName, value: value.value };
  };
  return row;
}

/**
 * Settings for `script`. `pythons` from /api/pythons, `secrets` from the vault (names only are used).
 * Returns { general, limits, env, notify, value() } (four DOM parts; value() is the JSON to save).
 */
export function createScriptSettings(script, { pythons = [], secrets = [], folders = [], onChange = () => {} } = {}) {
  const name = h("input", { autocomplete: "off", maxlength: 255, value: script.name });
  const folderList = h("datalist", { id: "script-folders" }, folders.map((f) => h("option", { value: f })));
  const folder = h("input", { autocomplete: "off", list: "script-folders", value: script.folder || "", placeholder: "optional" });
  const pythonVersion = h("select", {}, pythonOptions(pythons, script.python_version));
  if (script.python_version) pythonVersion.value = script.python_version;
  const enabled = h("input", { type: "checkbox", checked: script.enabled });
  const network = h("input", { type: "checkbox", checked: script.network });
  const urlTrigger = h("input", { type: "checkbox", checked: script.url_trigger, id: "script-url-trigger" });
  const urlTriggerGet = h("input", { type: "checkbox", checked: script.url_trigger_get, id: "script-url-trigger-get" });
  const timeout = h("input", { inputmode: "numeric", value: String(script.timeout_seconds ?? "") });
  const memory = h("input", { inputmode: "numeric", value: String(script.memory_mb ?? "") });
  const cpu = h("input", { inputmode: "numeric", value: String(script.cpu_seconds ?? "") });
  const overlap = h(
    "select",
    {},
    h("option", { value: "skip" }, "skip — a run still going makes the next one skip (logged)"),
    h("option", { value: "queue" }, "queue — the next run waits for it"),
  );
  overlap.value = script.overlap || "skip";
  const notify = script.notify || {};
  const onSuccess = h("input", { type: "checkbox", checked: notify.on_success });
  const onFailure = h("input", { type: "checkbox", checked: notify.on_failure });
  const emails = h("input", { autocomplete: "off", value: (notify.emails || []).join(", "), placeholder: "ops@example.com, me@example.com" });

  const rows = h("div", { class: "env-rows", id: "script-env-vars" });
  const removeRow = (row) => {
    row.remove();
    onChange();
  };
  const addRow = (entry) => rows.appendChild(envRow(entry, secrets, onChange, removeRow));
  for (const entry of script.env || []) addRow(entry);

  for (const control of [name, folder, timeout, memory, cpu, emails]) control.addEventListener("input", onChange);
  for (const control of [pythonVersion, enabled, network, urlTrigger, urlTriggerGet, overlap, onSuccess, onFailure]) control.addEventListener("change", onChange);

  const check = (input, label) => h("label", { class: "toggle" }, input, ` ${label}`);
  const general = h(
    "div",
    { class: "settings-part" },
    field("name", "name", name),
    field("folder", "folder", folder),
    folderList,
    field("python", "python_version", pythonVersion),
    h("div", { class: "inline-fields" }, check(enabled, "enabled"), check(network, "network access")),
    h("div", { class: "field-error", dataset: { errorFor: "enabled" } }),
    h("div", { class: "field-error", dataset: { errorFor: "network" } }),
    h("div", { class: "inline-fields" }, check(urlTrigger, "URL trigger"), check(urlTriggerGet, "also by GET")),
    h("div", { class: "hint" }, `An API key (tab API Keys) may run it: POST ${location.origin}/api/scripts/${script.slug}/trigger`),
    h("div", { class: "field-error", dataset: { errorFor: "url_trigger" } }),
  );
  const limits = h(
    "div",
    { class: "settings-part limits" },
    field("timeout (s)", "timeout_seconds", timeout),
    field("memory (MB)", "memory_mb", memory),
    field("CPU time (s)", "cpu_seconds", cpu),
    field("when a run is still going", "overlap", overlap),
  );
  const env = h(
    "div",
    { class: "settings-part", dataset: { field: "env" } },
    rows,
    h("button", { type: "button", class: "btn btn-small", id: "add-env-var", onclick: () => (addRow(), onChange()) }, "+ variable"),
    h("div", { class: "hint" }, "A secret's value comes from the vault and reaches only the script's process."),
    h("div", { class: "field-error", dataset: { errorFor: "env" }, role: "alert" }),
  );
  const notifyPart = h(
    "div",
    { class: "settings-part", dataset: { field: "notify" } },
    h("div", { class: "inline-fields" }, check(onSuccess, "on success"), check(onFailure, "on failure")),
    field("recipients", "notify_emails", emails, "Comma-separated; empty uses the server default."),
    h("div", { class: "field-error", dataset: { errorFor: "notify" }, role: "alert" }),
  );

  function value() {
    return {
      name: name.value,
      folder: folder.value.trim(),
      python_version: pythonVersion.value,
      enabled: enabled.checked,
      network: network.checked,
      url_trigger: urlTrigger.checked,
      url_trigger_get: urlTriggerGet.checked,
      timeout_seconds: intOrRaw(timeout.value),
      memory_mb: intOrRaw(memory.value),
      cpu_seconds: intOrRaw(cpu.value),
      overlap: overlap.value,
      env: [...rows.children].map((row) => row.read()).filter((e) => e.name || e.value),
      notify: {
        on_success: onSuccess.checked,
        on_failure: onFailure.checked,
        emails: emails.value
          .split(/[,\s]+/)
          .map((e) => e.trim())
          .filter(Boolean),
      },
    };
  }

  return { general, limits, env, notify: notifyPart, value };
}
