// The schedule builder of a script: manual, interval, cron (with presets and a time zone) or at
// startup, with the server's preview of the next five runs (POST /api/scripts/schedule-preview).
import { api, errorText } from "./api.js";
import { field, h, replace } from "./dom.js";
import { formatDate, viewerTimeZone } from "./format.js";

export const SCHEDULE_TYPES = [
  ["manual", "manual — only when you press run"],
  ["interval", "interval — every N seconds, minutes or hours"],
  ["cron", "cron — five fields, in a time zone"],
  ["startup", "at startup — when the service starts"],
];
const UNITS = ["seconds", "minutes", "hours"];
const CRON_PRESETS = [
  ["", "presets…"],
  ["*/15 * * * *", "every 15 minutes"],
  ["0 * * * *", "every hour, on the hour"],
  ["0 3 * * *", "every day at 03:00"],
  ["0 9 * * 1-5", "weekdays at 09:00"],
  ["0 6 * * 1", "Mondays at 06:00"],
  ["0 0 1 * *", "the 1st of each month at 00:00"],
];

function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf("timeZone");
  } catch (err) {
    zones = [];
  }
  return ["UTC", ...zones.filter((z) => z !== "UTC")];
}

function plural(n, unit) {
  return Number(n) === 1 ? unit.replace(/s$/, "") : unit;
}

/** One line for a list: "every 5 minutes", "cron 0 3 * * * (Europe/Prague)", "manual". */
export function scheduleSummary(schedule) {
  const s = schedule || { type: "manual" };
  if (s.type === "interval") return `every ${s.every} ${plural(s.every, s.unit || "seconds")}`;
  if (s.type === "cron") return `cron ${s.cron} (${s.timezone || "UTC"})`;
  if (s.type === "startup") return "at startup";
  return "manual";
}

function intOrRaw(text) {
  const trimmed = String(text).trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** A run time in the viewer's zone, and in the schedule's zone when that differs. */
function previewLine(iso, zone) {
  const local = formatDate(iso);
  if (!zone || zone === viewerTimeZone) return h("li", {}, local);
  let there = "";
  try {
    there = new Intl.DateTimeFormat("sv-SE", { timeZone: zone, dateStyle: "short", timeStyle: "medium" }).format(new Date(iso));
  } catch (err) {
    there = "";
  }
  return h("li", {}, local, there ? h("span", { class: "muted" }, `  = ${there} ${zone}`) : null);
}

/**
 * The builder for `schedule` (the script's schedule JSON). `onChange()` runs on every edit.
 * Returns { dom, value() } where value() is the schedule JSON to save.
 */
export function createScheduleBuilder(schedule, { onChange } = {}) {
  const s = { type: "manual", every: 5, unit: "minutes", cron: "0 3 * * *", timezone: "UTC", ...(schedule || {}) };
  const type = h("select", { id: "schedule-type" }, SCHEDULE_TYPES.map(([value, label]) => h("option", { value }, label)));
  type.value = s.type;
  const every = h("input", { id: "schedule-every", inputmode: "numeric", value: String(s.every ?? ""), size: 6 });
  const unit = h("select", { id: "schedule-unit", "aria-label": "unit" }, UNITS.map((u) => h("option", { value: u }, u)));
  unit.value = UNITS.includes(s.unit) ? s.unit : "minutes";
  const cron = h("input", { id: "schedule-cron", autocomplete: "off", spellcheck: "false", value: s.cron || "", placeholder: "0 3 * * *" });
  const preset = h("select", { id: "schedule-preset", "aria-label": "cron presets" }, CRON_PRESETS.map(([v, label]) => h("option", { value: v }, label)));
  const zoneList = h("datalist", { id: "schedule-timezones" }, timeZones().map((z) => h("option", { value: z })));
  const timezone = h("input", { id: "schedule-timezone", autocomplete: "off", list: "schedule-timezones", value: s.timezone || "UTC" });
  const preview = h("div", { class: "schedule-preview", id: "schedule-preview", "aria-live": "polite" });

  const intervalPart = h("div", { class: "inline-fields", dataset: { scheduleType: "interval" } }, h("span", {}, "every"), every, unit);
  const cronPart = h(
    "div",
    { class: "cron-fields", dataset: { scheduleType: "cron" } },
    h("div", { class: "inline-fields" }, cron, preset),
    h("div", { class: "hint" }, "minute  hour  day-of-month  month  day-of-week"),
    h("div", { class: "inline-fields" }, h("label", { for: "schedule-timezone" }, "time zone"), timezone, zoneList),
  );
  const fieldBox = field("schedule", "schedule", type);
  fieldBox.querySelector(".field-error").before(intervalPart, cronPart, preview);

  function value() {
    if (type.value === "interval") return { type: "interval", every: intOrRaw(every.value), unit: unit.value };
    if (type.value === "cron") return { type: "cron", cron: cron.value.trim(), timezone: timezone.value.trim() || "UTC" };
    return { type: type.value };
  }

  let timer = null;
  let asked = 0;
  async function refreshPreview() {
    const current = value();
    if (current.type === "manual") return replace(preview, h("span", { class: "muted" }, "Runs only when you press run (or a polling job starts it)."));
    if (current.type === "startup") return replace(preview, h("span", { class: "muted" }, "Runs once each time the service starts."));
    const ticket = ++asked;
    replace(preview, h("span", { class: "muted" }, "next runs: …"));
    try {
      const data = await api.schedulePreview(current);
      if (ticket !== asked) return;
      const runs = data.next_runs || [];
      replace(
        preview,
        h("div", { class: "muted" }, `next runs (your time, ${viewerTimeZone}):`),
        h("ol", { class: "next-runs" }, runs.map((iso) => previewLine(iso, current.timezone))),
      );
    } catch (err) {
      if (ticket !== asked) return;
      replace(preview, h("span", { class: "error" }, errorText(err)));
    }
  }

  function changed({ soon = false } = {}) {
    intervalPart.hidden = type.value !== "interval";
    cronPart.hidden = type.value !== "cron";
    clearTimeout(timer);
    timer = setTimeout(refreshPreview, soon ? 0 : 400);
    if (onChange) onChange();
  }

  type.addEventListener("change", () => changed({ soon: true }));
  unit.addEventListener("change", () => changed({ soon: true }));
  for (const input of [every, cron, timezone]) input.addEventListener("input", () => changed());
  preset.addEventListener("change", () => {
    if (!preset.value) return;
    cron.value = preset.value;
    preset.value = "";
    changed({ soon: true });
  });
  intervalPart.hidden = s.type !== "interval";
  cronPart.hidden = s.type !== "cron";
  refreshPreview();

  return { dom: fieldBox, value };
}
