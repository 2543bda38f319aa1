// The create / edit job form, shown in the modal. Validation is the API's: its `errors` object is
// shown next to the matching field.
import { api } from "./api.js";
import { clearFormErrors, closeModal, field, h, openModal, showFormErrors, toast } from "./dom.js";

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

/**
 * Open the form. `job` undefined → create (POST /api/jobs); otherwise edit (PUT /api/jobs/{id},
 * only the fields that changed). `onSaved(job)` runs after success.
 */
export async function openJobForm(ctx, { job, onSaved } = {}) {
  const editing = Boolean(job);
  let secrets = [];
  if (!editing) {
    try {
      secrets = await ctx.secrets();
    } catch (err) {
      secrets = [];
      toast(`Could not load secrets: ${err.detail || err.message}`, "error");
    }
  }
  const defaults = ctx.config?.poll_interval_seconds?.default ?? 120;
  const v = (key, fallback = "") => (editing && job[key] != null ? String(job[key]) : fallback);

  const name = h("input", { autocomplete: "off", maxlength: 255, value: v("name"), placeholder: "nightly-embeddings" });
  const batchIds = h("textarea", { rows: 4, spellcheck: "false", placeholder: "batch_abc123\nbatch_def456" });
  const openaiSecret = h("select", {}, secretOptions(secrets, "openai"));
  const actionType = h(
    "select",
    {},
    h("option", { value: "keboola" }, "keboola — run a Keboola configuration"),
    h("option", { value: "webhook" }, "webhook — POST to a URL"),
  );
  if (editing) actionType.value = job.action_type || "keboola";
  const keboolaSecret = h("select", {}, secretOptions(secrets, "keboola"));
  const stackUrl = h("input", { autocomplete: "off", value: v("keboola_stack_url"), placeholder: EXAMPLE_STACK });
  const componentId = h("input", { autocomplete: "off", value: v("keboola_component_id"), placeholder: "kds-team.app-custom-python" });
  const configurationId = h("input", { autocomplete: "off", value: v("keboola_configuration_id"), placeholder: "123456" });
  const actionUrl = h("input", { autocomplete: "off", value: v("action_url"), placeholder: "https://example.com/hook" });
  const actionSecret = h("select", {}, secretOptions(secrets, "http_header", { optional: true }));
  const interval = h("input", { inputmode: "numeric", value: v("poll_interval_seconds", String(defaults)) });
  const notifyEmails = h("input", { autocomplete: "off", value: v("notify_emails"), placeholder: "ops@example.com, me@example.com" });
  const notifyWebhook = h("input", { autocomplete: "off", value: v("notify_webhook_url"), placeholder: "optional" });

  const keboolaFields = h(
    "fieldset",
    { class: "group", dataset: { action: "keboola" } },
    h("legend", {}, "keboola"),
    editing ? null : field("keboola secret", "keboola_secret_id", keboolaSecret),
    field("stack URL", "keboola_stack_url", stackUrl),
    field("component id", "keboola_component_id", componentId),
    field("configuration id", "keboola_configuration_id", configurationId),
  );
  const webhookFields = h(
    "fieldset",
    { class: "group", dataset: { action: "webhook" } },
    h("legend", {}, "webhook"),
    field("webhook URL", "action_url", actionUrl),
    editing ? null : field("header secret", "action_secret_id", actionSecret, "Optional; sent as X-TeckoChecker-Secret."),
  );
  const syncAction = () => {
    keboolaFields.hidden = actionType.value !== "keboola";
    webhookFields.hidden = actionType.value !== "webhook";
  };
  actionType.addEventListener("change", syncAction);
  syncAction();

  const form = h(
    "form",
    { class: "form", id: "job-form", novalidate: true },
    field("name", "name", name),
    editing ? null : field("batch ids (one per line, 1-10)", "batch_ids", batchIds),
    editing ? null : field("openai secret", "openai_secret_id", openaiSecret),
    editing ? null : field("action", "action_type", actionType),
    keboolaFields,
    webhookFields,
    field("poll interval (seconds)", "poll_interval_seconds", interval),
    field("notify emails", "notify_emails", notifyEmails, "Comma-separated; empty uses the server default."),
    field("notify webhook URL", "notify_webhook_url", notifyWebhook),
    h("div", { class: "form-error", role: "alert" }),
    h(
      "div",
      { class: "form-actions" },
      h("button", { type: "button", class: "btn", onclick: closeModal }, "cancel"),
      h("button", { type: "submit", class: "btn btn-primary" }, editing ? "save changes" : "create job"),
    ),
  );

  function createBody() {
    const body = {
      name: name.value,
      batch_ids: batchIds.value
        .split(/\r?\n/)
        .map((line) => line.trim())
        .filter(Boolean),
      openai_secret_id: openaiSecret.value ? Number(openaiSecret.value) : null,
      action_type: actionType.value,
      poll_interval_seconds: intOrRaw(interval.value),
      notify_emails: notifyEmails.value,
      notify_webhook_url: notifyWebhook.value,
    };
    if (interval.value.trim() === "") delete body.poll_interval_seconds;
    if (actionType.value === "keboola") {
      body.keboola_secret_id = keboolaSecret.value ? Number(keboolaSecret.value) : null;
      body.keboola_stack_url = stackUrl.value;
      body.keboola_component_id = componentId.value;
      body.keboola_configuration_id = configurationId.value;
    } else {
      body.action_url = actionUrl.value;
      if (actionSecret.value) body.action_secret_id = Number(actionSecret.value);
    }
    return body;
  }

  function updateBody() {
    const candidates = {
      name: name.value,
      poll_interval_seconds: intOrRaw(interval.value),
      notify_emails: notifyEmails.value,
      notify_webhook_url: notifyWebhook.value,
    };
    if ((job.action_type || "keboola") === "keboola") {
      Object.assign(candidates, {
        keboola_stack_url: stackUrl.value,
        keboola_component_id: componentId.value,
        keboola_configuration_id: configurationId.value,
      });
    } else {
      candidates.action_url = actionUrl.value;
    }
    const body = {};
    for (const [key, value] of Object.entries(candidates)) {
      if (String(value) !== String(job[key] ?? "")) body[key] = value;
    }
    return body;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    const submit = form.querySelector("button[type=submit]");
    submit.disabled = true;
    try {
      let saved;
      if (editing) {
        const body = updateBody();
        saved = Object.keys(body).length ? await api.updateJob(job.id, body) : job;
        toast(`Job '${saved.name}' saved.`, "success");
        ctx.print(`job ${saved.id} updated${Object.keys(body).length ? `: ${Object.keys(body).join(", ")}` : " (no changes)"}`);
      } else {
        saved = await api.createJob(createBody());
        toast(`Job '${saved.name}' created with ${saved.batch_count} batch(es).`, "success");
        ctx.print(`job ${saved.id} '${saved.name}' created (${saved.batch_count} batches)`);
      }
      closeModal();
      if (onSaved) onSaved(saved);
    } catch (err) {
      showFormErrors(form, err);
    } finally {
      submit.disabled = false;
    }
  });

  openModal(editing ? `edit job #${job.id}` : "create job", form);
}
