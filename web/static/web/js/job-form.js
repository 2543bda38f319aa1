// The create / edit job form, shown in the modal. Validation is the API's: its `errors` object is
// shown next to the matching field.
import { api } from "./api.js";
import { closeModal, field, h, modalForm, openModal, toast } from "./dom.js";

const EXAMPLE_STACK = "https://connection.eu-central-1.keboola.com";

function secretOptions(secrets, type, { optional = false } = {}) {
  const matching = secrets.filter((s) => s.type === type);
  const options = [];
  if (optional) options.push(h("option", { value: "" }, "— none —"));
  else if (!matching.length) options.push(h("option", { value: "" }, `— no ${type} secret: add one in Secrets —`));
  for (const s of matching) options.push(h("option", { value: String(s.id) }, `${s.name} (#${s.id})`));
  return options;
}

function intOrRaw(text) {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** Secrets and scripts for the create form's pickers; an edit needs neither (they cannot
 * change there). */
async function loadChoices(ctx, editing) {
  if (editing) return { secrets: [], scripts: [] };
  const [secrets, scripts] = await Promise.allSettled([ctx.secrets(), api.scripts()]);
  for (const [what, result] of [["secrets", secrets], ["scripts", scripts]]) {
    if (result.status === "rejected") toast(`Could not load ${what}: ${result.reason.detail || result.reason.message}`, "error");
  }
  return {
    secrets: secrets.status === "fulfilled" ? secrets.value : [],
    scripts: scripts.status === "fulfilled" ? scripts.value.scripts || [] : [],
  };
}

function scriptOptions(scripts) {
  if (!scripts.length) return [h("option", { value: "" }, "— no script yet: add one in Scripts —")];
  return scripts.map((s) => h("option", { value: String(s.id) }, `${s.name} (${s.slug})`));
}

/** Every input of the form, filled from `job` when editing. */
function jobControls(job, { secrets, scripts }, defaultInterval) {
  const v = (key, fallback = "") => (job && job[key] != null ? String(job[key]) : fallback);
  const actionType = h(
    "select",
    {},
    h("option", { value: "keboola" }, "keboola — run a Keboola configuration"),
    h("option", { value: "webhook" }, "webhook — POST to a URL"),
    h("option", { value: "script" }, "script — run one of your scripts"),
  );
  if (job) actionType.value = job.action_type || "keboola";
  return {
    name: h("input", { autocomplete: "off", maxlength: 255, value: v("name"), placeholder: "nightly-embeddings" }),
    batchIds: h("textarea", { rows: 4, spellcheck: "false", placeholder: "batch_abc123\nbatch_def456" }),
    openaiSecret: h("select", {}, secretOptions(secrets, "openai")),
    actionType,
    keboolaSecret: h("select", {}, secretOptions(secrets, "keboola")),
    stackUrl: h("input", { autocomplete: "off", value: v("keboola_stack_url"), placeholder: EXAMPLE_STACK }),
    componentId: h("input", { autocomplete: "off", value: v("keboola_component_id"), placeholder: "kds-team.app-custom-python" }),
    configurationId: h("input", { autocomplete: "off", value: v("keboola_configuration_id"), placeholder: "123456" }),
    actionUrl: h("input", { autocomplete: "off", value: v("action_url"), placeholder: "https://example.com/hook" }),
    actionSecret: h("select", {}, secretOptions(secrets, "http_header", { optional: true })),
    actionScript: h("select", {}, scriptOptions(scripts)),
    interval: h("input", { inputmode: "numeric", value: v("poll_interval_seconds", String(defaultInterval)) }),
    notifyEmails: h("input", { autocomplete: "off", value: v("notify_emails"), placeholder: "ops@example.com, me@example.com" }),
    notifyWebhook: h("input", { autocomplete: "off", value: v("notify_webhook_url"), placeholder: "optional" }),
  };
}

/** The form: fields that cannot change after creation are left out when editing. */
function jobFormLayout(c, editing, onSubmit) {
  const keboolaFields = h(
    "fieldset",
    { class: "group", dataset: { action: "keboola" } },
    h("legend", {}, "keboola"),
    editing ? null : field("keboola secret", "keboola_secret_id", c.keboolaSecret),
    field("stack URL", "keboola_stack_url", c.stackUrl),
    field("component id", "keboola_component_id", c.componentId),
    field("configuration id", "keboola_configuration_id", c.configurationId),
  );
  const webhookFields = h(
    "fieldset",
    { class: "group", dataset: { action: "webhook" } },
    h("legend", {}, "webhook"),
    field("webhook URL", "action_url", c.actionUrl),
    editing ? null : field("header secret", "action_secret_id", c.actionSecret, "Optional; sent as X-TeckoChecker-Secret."),
  );
  // The script is chosen once, at creation; an edit shows nothing of it.
  const scriptFields = editing
    ? null
    : h(
        "fieldset",
        { class: "group", dataset: { action: "script" } },
        h("legend", {}, "script"),
        field("script", "action_script_id", c.actionScript, "Runs once, with the batch results as environment variables."),
      );
  const syncAction = () => {
    keboolaFields.hidden = c.actionType.value !== "keboola";
    webhookFields.hidden = c.actionType.value !== "webhook";
    if (scriptFields) scriptFields.hidden = c.actionType.value !== "script";
  };
  c.actionType.addEventListener("change", syncAction);
  syncAction();

  return modalForm({
    id: "job-form",
    fields: [
      field("name", "name", c.name),
      editing ? null : field("batch ids (one per line, 1-10)", "batch_ids", c.batchIds),
      editing ? null : field("openai secret", "openai_secret_id", c.openaiSecret),
      editing ? null : field("action", "action_type", c.actionType),
      keboolaFields,
      webhookFields,
      scriptFields,
      field("poll interval (seconds)", "poll_interval_seconds", c.interval),
      field("notify emails", "notify_emails", c.notifyEmails, "Comma-separated; empty uses the server default."),
      field("notify webhook URL", "notify_webhook_url", c.notifyWebhook),
    ],
    submitLabel: editing ? "save changes" : "create job",
    onSubmit,
  });
}

/** POST /api/jobs body: the chosen action's fields only; an empty interval takes the default. */
function createBody(c) {
  const body = {
    name: c.name.value,
    batch_ids: c.batchIds.value
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter(Boolean),
    openai_secret_id: c.openaiSecret.value ? Number(c.openaiSecret.value) : null,
    action_type: c.actionType.value,
    poll_interval_seconds: intOrRaw(c.interval.value),
    notify_emails: c.notifyEmails.value,
    notify_webhook_url: c.notifyWebhook.value,
  };
  if (c.interval.value.trim() === "") delete body.poll_interval_seconds;
  if (c.actionType.value === "keboola") {
    body.keboola_secret_id = c.keboolaSecret.value ? Number(c.keboolaSecret.value) : null;
    body.keboola_stack_url = c.stackUrl.value;
    body.keboola_component_id = c.componentId.value;
    body.keboola_configuration_id = c.configurationId.value;
  } else if (c.actionType.value === "webhook") {
    body.action_url = c.actionUrl.value;
    if (c.actionSecret.value) body.action_secret_id = Number(c.actionSecret.value);
  } else {
    body.action_script_id = c.actionScript.value ? Number(c.actionScript.value) : null;
  }
  return body;
}

/** PUT /api/jobs/{id} body: only the fields that differ from `job`. */
function updateBody(c, job) {
  const candidates = {
    name: c.name.value,
    poll_interval_seconds: intOrRaw(c.interval.value),
    notify_emails: c.notifyEmails.value,
    notify_webhook_url: c.notifyWebhook.value,
  };
  if ((job.action_type || "keboola") === "keboola") {
    Object.assign(candidates, {
      keboola_stack_url: c.stackUrl.value,
      keboola_component_id: c.componentId.value,
      keboola_configuration_id: c.configurationId.value,
    });
  } else if (job.action_type === "webhook") {
    candidates.action_url = c.actionUrl.value;
  }
  const body = {};
  for (const [key, value] of Object.entries(candidates)) {
    if (String(value) !== String(job[key] ?? "")) body[key] = value;
  }
  return body;
}

/** Send the form; resolves to the saved job. An edit without changes sends nothing. */
async function saveJob(ctx, c, job) {
  if (job) {
    const body = updateBody(c, job);
    const saved = Object.keys(body).length ? await api.updateJob(job.id, body) : job;
    toast(`Job '${saved.name}' saved.`, "success");
    ctx.print(`job ${saved.id} updated${Object.keys(body).length ? `: ${Object.keys(body).join(", ")}` : " (no changes)"}`);
    return saved;
  }
  const saved = await api.createJob(createBody(c));
  toast(`Job '${saved.name}' created with ${saved.batch_count} batch(es).`, "success");
  ctx.print(`job ${saved.id} '${saved.name}' created (${saved.batch_count} batches)`);
  return saved;
}

/**
 * Open the form. `job` undefined → create (POST /api/jobs); otherwise edit (PUT /api/jobs/{id},
 * only the fields that changed). `onSaved(job)` runs after success.
 */
export async function openJobForm(ctx, { job, onSaved } = {}) {
  const editing = Boolean(job);
  const choices = await loadChoices(ctx, editing);
  const controls = jobControls(job, choices, ctx.config?.poll_interval_seconds?.default ?? 120);
  const form = jobFormLayout(controls, editing, async () => {
    const saved = await saveJob(ctx, controls, job);
    closeModal();
    if (onSaved) onSaved(saved);
  });
  openModal(editing ? `edit job #${job.id}` : "create job", form);
}
