// DOM helpers. Data is only ever inserted as text (textContent / text nodes), never as HTML.
import { errorText } from "./api.js";

/**
 * h("div", {class: "x", onclick: fn, dataset: {id: 1}}, "text", childNode, [more])
 * Strings and numbers become text nodes; null/false children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked" || key === "disabled" || key === "selected" || key === "hidden") el[key] = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** Only http(s) links are rendered as links, so a stored "javascript:" URL cannot run. */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url, window.location.origin);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (err) {
    return null;
  }
}

export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  box.appendChild(item);
  setTimeout(() => item.classList.add("toast-out"), 4200);
  setTimeout(() => item.remove(), 4800);
}

// --- modal ------------------------------------------------------------------------------------
const modal = () => document.getElementById("modal");
let onModalClose = null;

export function openModal(title, body, { onClose } = {}) {
  const dialog = modal();
  document.getElementById("modal-title").textContent = title;
  replace(document.getElementById("modal-body"), body);
  onModalClose = onClose || null;
  if (!dialog.open) dialog.showModal();
  const first = dialog.querySelector("input:not([type=hidden]), select, textarea, button.btn-primary");
  if (first) first.focus();
}

export function closeModal() {
  const dialog = modal();
  if (dialog.open) dialog.close();
}

export function setupModal() {
  const dialog = modal();
  document.getElementById("modal-close").addEventListener("click", closeModal);
  dialog.addEventListener("close", () => {
    clear(document.getElementById("modal-body"));
    const fn = onModalClose;
    onModalClose = null;
    if (fn) fn();
  });
}

/** A terminal-style confirmation (no window.confirm). Resolves true when confirmed. */
export function confirmAction(message, { confirmLabel = "yes, delete", danger = true } = {}) {
  return new Promise((resolve) => {
    let answered = false;
    const finish = (value) => {
      if (answered) return;
      answered = true;
      resolve(value);
      closeModal();
    };
    const body = h(
      "div",
      { class: "confirm" },
      h("p", { class: "confirm-message" }, message),
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "button", class: "btn", onclick: () => finish(false) }, "cancel"),
        h(
          "button",
          { type: "button", class: danger ? "btn btn-danger" : "btn btn-primary", onclick: () => finish(true) },
          confirmLabel,
        ),
      ),
    );
    openModal("confirm", body, { onClose: () => finish(false) });
    body.querySelector(".btn-danger, .btn-primary").focus();
  });
}

// --- forms ------------------------------------------------------------------------------------
/** A labelled field with a slot for its error message (data-error-for=name). */
export function field(label, name, control, hint) {
  control.name = name;
  control.id = control.id || `f-${name}`;
  return h(
    "div",
    { class: "field", dataset: { field: name } },
    h("label", { for: control.id }, label),
    control,
    hint ? h("div", { class: "hint" }, hint) : null,
    h("div", { class: "field-error", dataset: { errorFor: name }, role: "alert" }),
  );
}

/**
 * Show an API error in a form: `errors` entries next to their fields (a key like "batch_ids.0"
 * goes to "batch_ids"); anything without a field, and the detail when nothing matched, on top.
 */
export function showFormErrors(form, err) {
  clearFormErrors(form);
  const general = form.querySelector(".form-error");
  const unmatched = [];
  let matched = 0;
  const errors = (err && err.errors) || {};
  for (const [key, messages] of Object.entries(errors)) {
    const text = Array.isArray(messages) ? messages.map(String).join(" ") : String(messages);
    const slot = form.querySelector(`[data-error-for="${CSS.escape(key.split(".")[0])}"]`);
    if (slot) {
      slot.textContent = text;
      slot.closest(".field")?.classList.add("has-error");
      matched += 1;
    } else {
      unmatched.push(text);
    }
  }
  if (general) {
    const detail = err && (err.detail || err.message);
    general.textContent = unmatched.length ? unmatched.join(" ") : matched ? "" : detail || "Something went wrong.";
  }
  const first = form.querySelector(".has-error, .form-error:not(:empty)");
  if (first) {
    first.scrollIntoView({ block: "nearest" });
    first.querySelector("input, select, textarea")?.focus();
  }
}

export function clearFormErrors(form) {
  for (const slot of form.querySelectorAll(".field-error, .form-error")) slot.textContent = "";
  for (const f of form.querySelectorAll(".has-error")) f.classList.remove("has-error");
}

/**
 * A modal's form: `fields`, a line for errors that belong to no field, and cancel / submit.
 * While `onSubmit(form)` runs the submit button is disabled; what it throws is shown by
 * showFormErrors. onSubmit closes the modal itself when it is done.
 */
export function modalForm({ id, fields, submitLabel, onSubmit }) {
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, submitLabel);
  const form = h(
    "form",
    { class: "form", id, novalidate: true },
    fields,
    h("div", { class: "form-error", role: "alert" }),
    h("div", { class: "form-actions" }, h("button", { type: "button", class: "btn", onclick: closeModal }, "cancel"), submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFormErrors(form);
    submit.disabled = true;
    try {
      await onSubmit(form);
    } catch (err) {
      showFormErrors(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

// A list panel's (re)load: "loading…", then its rows (or one line saying there are none) and
// the count, or the error in the panel's status line.
export async function fillTable({ status, body, request, items, row, columns, empty, noun }) {
  status.textContent = "loading…";
  status.className = "panel-status";
  try {
    const data = await request();
    const list = items(data) || [];
    replace(body, list.length ? list.map(row) : h("tr", {}, h("td", { colspan: columns, class: "empty" }, empty)));
    status.textContent = `${data.total ?? list.length} ${noun}(s)`;
  } catch (err) {
    status.textContent = errorText(err);
    status.className = "panel-status error";
  }
}
