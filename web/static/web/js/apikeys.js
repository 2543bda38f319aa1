// API keys tab: list (prefix only, never a key), make one (the key is shown once, in the modal
// that answers), revoke with confirmation.
import { api, errorText } from "./api.js";
import { closeModal, confirmAction, field, fillTable, h, modalForm, openModal, replace, toast } from "./dom.js";
import { formatDate } from "./format.js";

const EXPIRY_CHOICES = [
  ["", "never"],
  ["30d", "in 30 days"],
  ["90d", "in 90 days"],
  ["365d", "in a year"],
];

export function createApiKeysTab(panel, ctx) {
  const status = h("div", { class: "panel-status" });
  const tableBody = h("tbody");
  const table = h(
    "table",
    { class: "table", id: "apikeys-table" },
    h(
      "thead",
      {},
      h("tr", {}, ["name", "prefix", "scope", "script", "owner", "state", "expires", "last used", ""].map((title) => h("th", {}, title))),
    ),
    tableBody,
  );
  replace(
    panel,
    h(
      "div",
      { class: "toolbar" },
      h("h2", {}, "> api keys"),
      h("div", { class: "spacer" }),
      h("button", { type: "button", class: "btn", onclick: () => load() }, "refresh"),
      h("button", { type: "button", class: "btn btn-primary", id: "add-apikey", onclick: () => openAdd() }, "+ New API Key"),
    ),
    h(
      "p",
      { class: "muted" },
      "Keys let other systems trigger scripts by URL (Authorization: Bearer <key>) or use the whole API. A key is shown once, when it is made; afterwards only its prefix.",
    ),
    status,
    h("div", { class: "table-wrap" }, table),
  );

  function row(key) {
    const scriptCell = key.scope === "full" ? h("span", { class: "muted" }, "—") : key.script_slug ? h("a", { href: `#scripts/${key.script}` }, key.script_slug) : "all scripts";
    return h(
      "tr",
      { dataset: { apikeyId: key.id, state: key.state } },
      h("td", { class: "cell-name" }, key.name),
      h("td", { class: "mono" }, `${key.prefix}…`),
      h("td", {}, key.scope),
      h("td", {}, scriptCell),
      h("td", {}, key.owner),
      h("td", {}, h("span", { class: `badge ${key.state === "active" ? "badge-done" : "badge-failed"}` }, key.state)),
      h("td", { class: "cell-date" }, key.expires_at ? formatDate(key.expires_at) : "never"),
      h("td", { class: "cell-date" }, key.last_used_at ? formatDate(key.last_used_at) : "never"),
      h(
        "td",
        { class: "actions" },
        key.state === "revoked" ? null : h("button", { type: "button", class: "btn btn-small btn-danger", onclick: () => revoke(key) }, "revoke"),
      ),
    );
  }

  function load() {
    return fillTable({
      status,
      body: tableBody,
      request: api.apiKeys,
      items: (data) => data.keys,
      row,
      columns: 9,
      empty: "No API keys yet.",
      noun: "key",
    });
  }

  async function revoke(key) {
    const ok = await confirmAction(`Revoke API key '${key.name}' (${key.prefix}…)? Requests with it fail at once.`, { confirmLabel: "yes, revoke" });
    if (!ok) return;
    try {
      await api.revokeApiKey(key.id);
      toast(`API key '${key.name}' revoked.`, "success");
      ctx.print(`revoked API key ${key.id} (${key.prefix}…)`);
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
    load();
  }

  function showKey(created) {
    const value = h("input", { readonly: true, class: "mono", id: "apikey-value", value: created.key, "aria-label": "the new API key" });
    const slug = created.script_slug || "<safe name>";
    const example = `curl -X POST -H "Authorization: Bearer $KEY" ${location.origin}/api/scripts/${slug}/trigger`;
    const copy = async () => {
      try {
        await navigator.clipboard.writeText(created.key);
        toast("Key copied.", "success");
      } catch (err) {
        value.select();
        toast("Select the key and copy it (the clipboard is not available here).", "info");
      }
    };
    const body = h(
      "div",
      { class: "form", id: "apikey-created" },
      h("p", {}, h("strong", {}, "Copy the key now: it is shown this once and never again.")),
      value,
      h("div", { class: "form-actions" }, h("button", { type: "button", class: "btn", onclick: copy }, "copy"), h("button", { type: "button", class: "btn btn-primary", onclick: closeModal }, "done")),
      h("p", { class: "hint" }, `Scope ${created.scope}${created.script_slug ? `, script ${created.script_slug}` : ""}. Use it as:`),
      h("pre", { class: "mono" }, example),
    );
    // The key lives only in this modal: closing it drops the element.
    openModal(`API key '${created.name}'`, body, {
      onClose: () => {
        value.value = "";
        body.remove();
      },
    });
    value.select();
  }

  async function openAdd() {
    const name = h("input", { autocomplete: "off", required: true, maxlength: 255, placeholder: "deploy hook" });
    const scope = h(
      "select",
      {},
      h("option", { value: "scripts:trigger" }, "scripts:trigger — only trigger scripts by URL"),
      h("option", { value: "full" }, "full — the whole API, as you"),
    );
    const script = h("select", {}, h("option", { value: "" }, "(all scripts)"));
    const expires = h("select", {}, EXPIRY_CHOICES.map(([value, label]) => h("option", { value }, label)));
    const scriptField = field("script", "script", script, "The one script this key may trigger. Turn on the script's URL trigger in its settings.");
    scope.addEventListener("change", () => (scriptField.hidden = scope.value !== "scripts:trigger"));
    const form = modalForm({
      id: "apikey-form",
      fields: [field("name", "name", name), field("scope", "scope", scope), scriptField, field("expires", "expires_at", expires)],
      submitLabel: "create key",
      onSubmit: async () => {
        const body = { name: name.value, scope: scope.value, expires_at: expires.value || null };
        if (scope.value === "scripts:trigger" && script.value) body.script = Number(script.value);
        const created = await api.createApiKey(body);
        // The same dialog shows the key (closing it first would clear the new body when its
        // close event arrives).
        ctx.print(`API key ${created.id} '${created.name}' (${created.prefix}…) created`);
        showKey(created);
        load();
      },
    });
    openModal("new API key", form);
    name.focus();
    try {
      const scripts = (await api.scripts()).scripts || [];
      for (const s of scripts) script.appendChild(h("option", { value: s.id }, `${s.name} (${s.slug})${s.url_trigger ? "" : " — URL trigger off"}`));
    } catch (err) {
      script.appendChild(h("option", { value: "", disabled: true }, `scripts unavailable: ${errorText(err)}`));
    }
  }

  return { load, openAdd };
}
