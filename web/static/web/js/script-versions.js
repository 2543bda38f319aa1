// A script's versions: every save of its code or requirements, a diff between any two, and
// restore (itself a new version). The script page reloads the list after each save.
import { api, errorText } from "./api.js";
import { confirmAction, h, replace, toast } from "./dom.js";
import { ago, formatDate } from "./format.js";

/** A unified diff as lines coloured by their first character (text only, never HTML). */
export function diffView(text) {
  if (!text) return h("div", { class: "muted" }, "No difference.");
  const kind = (line) => (line.startsWith("+++") || line.startsWith("---") ? "head" : { "+": "add", "-": "del", "@": "hunk" }[line[0]] || "same");
  return h("pre", { class: "diff" }, text.split("\n").filter((line, i, all) => line || i < all.length - 1).map((line) => h("span", { class: `diff-${kind(line)}` }, `${line}\n`)));
}

/**
 * The versions section of script `id`. `onRestored(script)` gets the script a restore left.
 * Returns { dom, load() }.
 */
export function createVersionsPanel(ctx, id, { onRestored }) {
  const status = h("div", { class: "panel-status" });
  const tbody = h("tbody");
  const from = h("select", { id: "version-from", "aria-label": "compare from version" });
  const to = h("select", { id: "version-to", "aria-label": "compare to version" });
  const diffBox = h("div", { id: "version-diff" });
  const dom = h(
    "section",
    { class: "script-section", id: "script-versions" },
    h("h3", {}, "> versions"),
    h("div", { class: "toolbar" }, h("span", { class: "muted" }, "compare"), from, h("span", { class: "muted" }, "→"), to, h("button", { type: "button", class: "btn btn-small", id: "version-compare", onclick: () => compare(Number(from.value), Number(to.value)) }, "diff")),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h("table", { class: "table", id: "versions-table" }, h("thead", {}, h("tr", {}, ["version", "saved", "by", "change", ""].map((t) => h("th", {}, t)))), tbody),
    ),
    diffBox,
  );

  function row(version) {
    const note = [version.current ? "current" : "", version.restored_from ? `restored from v${version.restored_from}` : ""].filter(Boolean).join(", ");
    return h(
      "tr",
      { class: "version-row", dataset: { version: version.number } },
      h("td", {}, `v${version.number}`, note ? h("span", { class: "muted" }, ` (${note})`) : null),
      h("td", { title: formatDate(version.created_at) }, ago(version.created_at)),
      h("td", {}, version.author || h("span", { class: "muted" }, "—")),
      h("td", {}, h("span", { class: "diff-add" }, `+${version.added}`), " ", h("span", { class: "diff-del" }, `-${version.removed}`)),
      h(
        "td",
        { class: "actions" },
        version.number > 1 ? h("button", { type: "button", class: "btn btn-small", dataset: { action: "diff" }, onclick: () => compare(version.number - 1, version.number) }, "diff") : null,
        version.current ? null : h("button", { type: "button", class: "btn btn-small", dataset: { action: "restore" }, onclick: () => restore(version.number) }, "restore"),
      ),
    );
  }

  async function load() {
    try {
      const data = await api.scriptVersions(id);
      const versions = data.versions || [];
      replace(tbody, versions.length ? versions.map(row) : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No versions yet: the first save keeps one.")));
      const options = (selected) => versions.map((v) => h("option", { value: v.number, selected: v.number === selected }, `v${v.number}`));
      const previous = versions[1]?.number ?? versions[0]?.number;
      replace(from, options(Number(from.value) || previous));
      replace(to, options(data.current));
      status.textContent = data.total > versions.length ? `newest ${versions.length} of ${data.total}` : "";
    } catch (err) {
      status.textContent = errorText(err);
    }
  }

  async function compare(a, b) {
    if (!a || !b) return;
    try {
      const diff = await api.scriptVersionDiff(id, a, b);
      replace(
        diffBox,
        h("div", { class: "muted", id: "version-diff-title" }, `v${diff.from} → v${diff.to}: +${diff.added} -${diff.removed}`),
        diffView(diff.code_diff + diff.requirements_diff),
      );
    } catch (err) {
      replace(diffBox, h("div", { class: "panel-status error" }, errorText(err)));
    }
  }

  async function restore(number) {
    const ok = await confirmAction(`Restore version ${number}? Its code and requirements become the newest version; unsaved edits to them are dropped.`, { confirmLabel: "restore", danger: false });
    if (!ok) return;
    try {
      const script = await api.restoreScriptVersion(id, number);
      toast(`Version ${number} restored as version ${script.version}.`, "success");
      ctx.print(`script ${id}: version ${number} restored as version ${script.version}`);
      onRestored(script);
      await load();
    } catch (err) {
      toast(errorText(err), "error");
      ctx.print(errorText(err), "error");
    }
  }

  return { dom, load };
}
