// Import / export on the System tab: download the bundle, or preview a bundle file (a dry run on
// the server, so the preview is exactly what the import will do) and then import it.
import { ApiError, api, errorText } from "./api.js";
import { h, replace, toast } from "./dom.js";

const ACTION_TEXT = { create: "+ create", update: "~ update", unchanged: "= unchanged", skip: "- skip" };

function reportTable(report) {
  if (!report.items.length) return h("p", { class: "muted" }, "The bundle holds no scripts and no jobs.");
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table compact", id: "bundle-items" },
      h("thead", {}, h("tr", {}, ["kind", "name", "action", "changes"].map((c) => h("th", {}, c)))),
      h(
        "tbody",
        {},
        report.items.map((item) =>
          h(
            "tr",
            { class: `bundle-${item.action}` },
            h("td", {}, item.kind),
            h("td", { class: "cell-name" }, item.key),
            h("td", { class: item.action === "unchanged" ? "muted" : item.action === "skip" ? "error" : "ok" }, ACTION_TEXT[item.action] || item.action),
            h("td", {}, item.fields.length ? item.fields.join(", ") : item.note),
          ),
        ),
      ),
    ),
  );
}

function errorList(err) {
  const places = err instanceof ApiError && err.status === 400 ? Object.entries(err.errors || {}) : [];
  const lines = places.flatMap(([place, messages]) => messages.map((m) => (place === "non_field_errors" ? m : `${place}: ${m}`)));
  // With a list, the heading only counts: the server's detail repeats the first line.
  const heading = lines.length ? `Nothing was imported: ${lines.length} problem(s).` : errorText(err);
  return h(
    "div",
    { id: "bundle-errors", role: "alert" },
    h("p", { class: "error" }, heading),
    lines.length ? h("ul", { class: "error" }, lines.map((line) => h("li", {}, line))) : null,
  );
}

export function createBundleSection() {
  const file = h("input", { type: "file", id: "bundle-file", accept: ".json,application/json" });
  const result = h("div", { id: "bundle-result", "aria-live": "polite" });
  let bundle = null;

  async function preview() {
    bundle = null;
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    replace(result, h("p", { class: "muted" }, `Checking ${chosen.name}…`));
    let parsed;
    try {
      parsed = JSON.parse(await chosen.text());
    } catch (err) {
      replace(result, h("p", { class: "error", role: "alert", id: "bundle-errors" }, `${chosen.name} is not JSON: ${err.message}`));
      return;
    }
    try {
      const report = await api.importBundle(parsed, { dryRun: true });
      bundle = parsed;
      const apply = h("button", { type: "button", class: "btn btn-primary", id: "bundle-apply", onclick: () => applyIt(apply) }, "import");
      replace(
        result,
        h("p", { id: "bundle-summary" }, report.summary),
        reportTable(report),
        report.changed
          ? h("div", { class: "toolbar" }, apply, h("button", { type: "button", class: "btn", onclick: reset }, "cancel"))
          : null,
      );
    } catch (err) {
      replace(result, errorList(err));
    }
  }

  async function applyIt(button) {
    if (!bundle) return;
    button.disabled = true;
    try {
      const report = await api.importBundle(bundle, { dryRun: false });
      bundle = null;
      file.value = "";
      replace(result, h("p", { id: "bundle-summary", class: "ok" }, report.summary), reportTable(report));
      toast(report.summary, "success");
    } catch (err) {
      button.disabled = false;
      replace(result, errorList(err));
    }
  }

  function reset() {
    bundle = null;
    file.value = "";
    replace(result);
  }

  file.addEventListener("change", preview);
  return h(
    "div",
    { id: "bundle-section" },
    h(
      "p",
      { class: "muted" },
      "Every script and every active or paused job as one JSON file. Secrets travel by name, never by value: the target needs secrets of the same names.",
    ),
    h(
      "div",
      { class: "toolbar" },
      h("a", { class: "btn", id: "bundle-export", href: "/api/export?download=true", download: "teckochecker-bundle.json" }, "download export"),
      h("label", { class: "btn", for: "bundle-file" }, "import a file…"),
      file,
    ),
    result,
  );
}
