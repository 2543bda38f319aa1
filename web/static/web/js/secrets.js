// Secrets tab: list (never values), add in a modal, delete with confirmation.
import { api, errorText } from "./api.js";
import { closeModal, confirmAction, field, fillTable, h, modalForm, openModal, replace, toast } from "./dom.js";
import { formatDate } from "./format.js";

export const SECRET_TYPES = [
  ["openai", "OpenAI API key"],
  ["keboola", "Keboola Storage API token"],
  ["openai_webhook", "OpenAI webhook signing secret"],
  ["http_header", "Header value for a webhook action"],
];

export function createSecretsTab(panel, ctx) {
  const status = h("div", { class: "panel-status" });
  const tableBody = h("tbody");
  const table = h(
    "table",
    { class: "table", id: "secrets-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", {}, "type"), h("th", {}, "created"), h("th", {}, "used by"), h("th", {}, ""))),
    tableBody,
  );
  replace(
    panel,
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> secrets"),
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", onclick: () => load() }, "refresh"),
      h("button", { type: "button", class: "btn btn-primary", id: "add-secret", onclick: () => openAdd() }, "+ Add Secret"),
    ),
    h("p", { class: "muted" }, "Values are encrypted at rest and never shown again after you save them."),
    status,
    h("div", { class: "table-wrap" }, table),
  );

  function usedBy(ids) {
    if (!ids || !ids.length) return h("span", { class: "muted" }, "—");
    return ids.map((id, i) => [
      i ? ", " : null,
      h("a", { href: `#jobs/${id}`, class: "job-link" }, `#${id}`),
    ]);
  }

  function row(secret) {
    return h(
      "tr",
      { dataset: { secretId: secret.id } },
      h("td", { class: "cell-name" }, secret.name),
      h("td", {}, h("span", { class: `type-badge type-${secret.type}` }, secret.type)),
      h("td", { class: "cell-date" }, formatDate(secret.created_at)),
      h("td", {}, usedBy(secret.used_by)),
      h(
        "td",
        { class: "actions" },
        h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => remove(secret) }, "delete"),
      ),
    );
  }

  function load() {
    return fillTable({
      status,
      body: tableBody,
      request: api.secrets,
      items: (data) => data.secrets,
      row,
      columns: 5,
      empty: "No secrets yet. Add an OpenAI key and a Keboola token to create jobs.",
      noun: "secret",
    });
  }

  async function remove(secret) {
    const ok = await confirmAction(`Delete secret '${secret.name}'? Jobs that used it keep their history.`);
    if (!ok) return;
    try {
      const result = await api.deleteSecret(secret.id);
      toast(result.message || `Secret '${secret.name}' deleted.`, "success");
      ctx.print(result.message || `deleted secret ${secret.id}`);
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    load();
  }

  function openAdd() {
    const name = h("input", { autocomplete: "off", required: true, maxlength: 255, placeholder: "openai-prod" });
    const type = h("select", {}, SECRET_TYPES.map(([value, label]) => h("option", { value }, `${value} — ${label}`)));
    const value = h("input", { type: "password", autocomplete: "new-password", required: true, placeholder: "sk-… / token" });
    const form = modalForm({
      id: "secret-form",
      fields: [
        field("name", "name", name),
        field("type", "type", type),
        field("value", "value", value, "Stored encrypted; it is never displayed again."),
      ],
      submitLabel: "save secret",
      onSubmit: async () => {
        const created = await api.createSecret({ name: name.value, type: type.value, value: value.value });
        value.value = "";
        closeModal();
        toast(`Secret '${created.name}' saved.`, "success");
        ctx.print(`secret ${created.id} '${created.name}' (${created.type}) saved`);
        ctx.secretsChanged();
        load();
      },
    });
    openModal("add secret", form);
  }

  return { load, openAdd };
}
