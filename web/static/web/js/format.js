// Dates in the viewer's own time zone, durations, countdowns.
import { h } from "./dom.js";

export const viewerTimeZone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";

// "2026-01-22 10:15:00": ISO-like and terminal-like, in the viewer's time zone (sv-SE only picks
// the digit layout, not the zone).
const dateTime = new Intl.DateTimeFormat("sv-SE", {
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat("sv-SE", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function parse(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function formatDate(value) {
  const date = parse(value);
  return date ? dateTime.format(date) : "—";
}

export function formatTime(value) {
  const date = parse(value);
  return date ? timeOnly.format(date) : "—";
}

export function duration(totalSeconds) {
  let s = Math.max(0, Math.round(totalSeconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = Math.floor(s / 3600);
  s -= hh * 3600;
  const mm = Math.floor(s / 60);
  s -= mm * 60;
  if (d) return hh ? `${d}d ${hh}h` : `${d}d`;
  if (hh) return mm ? `${hh}h ${mm}m` : `${hh}h`;
  if (mm) return s ? `${mm}m ${s}s` : `${mm}m`;
  return `${s}s`;
}

export function ago(value) {
  const date = parse(value);
  if (!date) return "never";
  return `${duration((Date.now() - date.getTime()) / 1000)} ago`;
}

function countdownText(target) {
  const seconds = (target.getTime() - Date.now()) / 1000;
  return seconds <= 0 ? "due now" : `in ${duration(seconds)}`;
}

/** A <time> that counts down to `value`; tickCountdowns() keeps every one of them current. */
export function countdown(value) {
  const date = parse(value);
  if (!date) return h("span", { class: "muted" }, "—");
  return h(
    "time",
    { class: "countdown", datetime: date.toISOString(), title: `${formatDate(value)} (${viewerTimeZone})` },
    countdownText(date),
  );
}

export function tickCountdowns(root = document) {
  for (const el of root.querySelectorAll("time.countdown")) {
    el.textContent = countdownText(new Date(el.getAttribute("datetime")));
  }
}
