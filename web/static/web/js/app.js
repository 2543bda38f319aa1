// Boot: sign-in, tabs (hash routing: #jobs, #jobs/12, #scripts/3, #logs, ...), theme, command line.
import { api, csrfToken, errorText, onAuthRequired } from "./api.js";
import { createApiKeysTab } from "./apikeys.js";
import { h, setupModal, closeModal } from "./dom.js";
import { formatTime, tickCountdowns, viewerTimeZone } from "./format.js";
import { createJobsTab } from "./jobs.js";
import { startLive, stopLive } from "./live.js";
import { createLogsTab } from "./logs.js";
import { createMonitorTab } from "./monitor.js";
import { createScriptsTab } from "./scripts.js";
import { createSecretsTab } from "./secrets.js";
import { createSystemTab } from "./system.js";

const TABS = ["secrets", "jobs", "scripts", "monitor", "logs", "keys", "system"];
// Tabs with a list and a detail page per item (#jobs/12, #scripts/3).
const DETAIL_TABS = new Set(["jobs", "scripts"]);
const THEME_KEY = "teckochecker-theme";
const $ = (id) => document.getElementById(id);

const session = { signedIn: false, username: null, current: null };
const output = $("console-output");

function print(message, kind = "info") {
  output.appendChild(h("div", { class: `console-msg console-${kind}` }, h("span", { class: "muted" }, `${formatTime(new Date().toISOString())} `), message));
  while (output.childElementCount > 100) output.firstElementChild.remove();
  output.scrollTop = output.scrollHeight;
}

const ctx = {
  config: null,
  print,
  navigate: (hash) => {
    if (location.hash === `#${hash}`) route();
    else location.hash = hash;
  },
  isVisible: (tab) => session.signedIn && session.current === tab && !document.hidden,
  username: () => session.username,
  secrets: async () => (await api.secrets()).secrets || [],
  secretsChanged: () => {},
};

const tabs = {
  secrets: createSecretsTab($("panel-secrets"), ctx),
  jobs: createJobsTab($("panel-jobs"), ctx),
  scripts: createScriptsTab($("panel-scripts"), ctx),
  monitor: createMonitorTab($("panel-monitor"), ctx),
  logs: createLogsTab($("panel-logs"), ctx),
  keys: createApiKeysTab($("panel-keys"), ctx),
  system: createSystemTab($("panel-system"), ctx),
};

// --- theme ------------------------------------------------------------------------------------
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  $("theme-toggle").textContent = theme === "light" ? "dark theme" : "light theme";
  try {
    localStorage.setItem(THEME_KEY, theme);
  } catch (err) {
    /* storage disabled: the choice lasts for this page only */
  }
}
function toggleTheme() {
  applyTheme(document.documentElement.dataset.theme === "light" ? "dark" : "light");
}

// --- routing ----------------------------------------------------------------------------------
function parseHash() {
  const [tab, id] = location.hash.replace(/^#\/?/, "").split("/");
  return { tab: TABS.includes(tab) ? tab : "jobs", id: DETAIL_TABS.has(tab) && /^\d+$/.test(id || "") ? Number(id) : null };
}

function show(tab) {
  session.current = tab;
  for (const button of document.querySelectorAll(".tab")) {
    const active = button.dataset.tab === tab;
    button.classList.toggle("active", active);
    button.setAttribute("aria-selected", String(active));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== tab;
}

function route() {
  if (!session.signedIn) return;
  const { tab, id } = parseHash();
  show(tab);
  if (DETAIL_TABS.has(tab)) {
    if (id) tabs[tab].showDetail(id);
    else tabs[tab].showList();
  } else {
    tabs[tab].load();
  }
}

// --- sign-in ----------------------------------------------------------------------------------
function showLogin(message = "") {
  const wasSignedIn = session.signedIn;
  session.signedIn = false;
  session.username = null;
  closeModal();
  $("tabs").hidden = true;
  $("logout").hidden = true;
  $("user-name").textContent = "";
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = true;
  $("panel-login").hidden = false;
  $("login-error").textContent = message;
  stopLive();
  if (wasSignedIn || !$("login-username").value) $("login-username").focus();
}

async function signedIn(username) {
  session.signedIn = true;
  session.username = username;
  $("panel-login").hidden = true;
  $("tabs").hidden = false;
  $("logout").hidden = false;
  $("user-name").textContent = username ? `[${username}]` : "";
  $("login-password").value = "";
  try {
    ctx.config = await api.config();
  } catch (err) {
    ctx.config = null;
  }
  startLive({ indicator: $("live-status"), print });
  route();
}

onAuthRequired((err) => {
  if (session.signedIn) showLogin(`${err.detail} Sign in again.`);
});

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const button = event.target.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    if (!csrfToken()) await api.session(); // sets a fresh CSRF cookie
    const result = await api.login($("login-username").value, $("login-password").value);
    print(`signed in as ${result.username}`);
    await signedIn(result.username);
  } catch (err) {
    $("login-error").textContent = errorText(err);
  } finally {
    button.disabled = false;
  }
});

async function logout() {
  try {
    await api.logout();
    print("signed out");
  } catch (err) {
    print(errorText(err), "error");
  }
  showLogin();
}
$("logout").addEventListener("click", logout);

// --- command line -----------------------------------------------------------------------------
const HELP = [
  "help              this list",
  "refresh           reload the current view",
  "clear             clear this console",
  "job <id>          open a job",
  "script <id>       open a script",
  "jobs | scripts | secrets | monitor | logs | keys | system   switch tab",
  "theme             switch light/dark",
  "logout            sign out",
  "keys:",
  "  Ctrl+S          save the open script (code saves itself a second after typing)",
  "  Ctrl+Enter      save and run the open script",
  "  g then 1-6      switch tab: 1 secrets, 2 jobs, 3 scripts, 4 monitor, 5 logs, 6 system",
  "  /               focus this command line (Esc leaves it)",
];
const history = [];
let historyAt = 0;

function runCommand(line) {
  const [command, ...args] = line.trim().split(/\s+/);
  if (!command) return;
  print(`$ ${line.trim()}`, "echo");
  switch (command.toLowerCase()) {
    case "help":
      for (const text of HELP) print(text, "help");
      break;
    case "refresh":
      if (!session.signedIn) print("sign in first", "error");
      else {
        route();
        print("refreshed");
      }
      break;
    case "clear":
      output.replaceChildren();
      break;
    case "job":
    case "script": {
      const id = args[0] || "";
      if (!/^\d+$/.test(id)) print(`usage: ${command.toLowerCase()} <id>  (a number)`, "error");
      else ctx.navigate(`${command.toLowerCase()}s/${id}`);
      break;
    }
    case "theme":
      toggleTheme();
      break;
    case "logout":
      logout();
      break;
    default:
      if (TABS.includes(command.toLowerCase())) ctx.navigate(command.toLowerCase());
      else print(`unknown command: ${command} (type help)`, "error");
  }
}

$("console-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("console-input");
  const line = input.value;
  input.value = "";
  if (line.trim()) history.push(line);
  historyAt = history.length;
  runCommand(line);
});
$("console-input").addEventListener("keydown", (event) => {
  const input = event.target;
  if (event.key === "ArrowUp" && historyAt > 0) {
    historyAt -= 1;
    input.value = history[historyAt];
    event.preventDefault();
  } else if (event.key === "ArrowDown") {
    historyAt = Math.min(history.length, historyAt + 1);
    input.value = history[historyAt] || "";
    event.preventDefault();
  }
});

// --- keyboard shortcuts (listed by `help`) ------------------------------------------------------
// Save and run work anywhere on a script's page (the editors handle them too: a key they took is
// not handled twice). The single keys act only outside text fields, so typing is never taken.
const typing = (target) => target instanceof Element && (target.matches("input, textarea, select") || target.closest("[contenteditable=true], .cm-editor"));
const TAB_KEYS = Object.fromEntries(TABS.map((tab, i) => [String(i + 1), tab]));
let awaitingTab = false;
document.addEventListener("keydown", (event) => {
  if (!session.signedIn || event.defaultPrevented) return;
  const mod = event.ctrlKey || event.metaKey;
  if (mod && !event.altKey && (event.key === "s" || event.key === "S" || event.key === "Enter")) {
    const name = event.key === "Enter" ? "run" : "save";
    if (session.current === "scripts" && tabs.scripts.scriptAction(name)) event.preventDefault();
    return;
  }
  if (mod || event.altKey || typing(event.target) || document.querySelector("dialog[open]")) {
    awaitingTab = false;
    return;
  }
  if (awaitingTab) {
    awaitingTab = false;
    const tab = TAB_KEYS[event.key];
    if (tab) {
      event.preventDefault();
      ctx.navigate(tab);
    }
  } else if (event.key === "g") {
    awaitingTab = true;
  } else if (event.key === "/") {
    event.preventDefault();
    $("console-input").focus();
  }
});
$("console-input").addEventListener("keydown", (event) => {
  if (event.key === "Escape") event.target.blur();
});

// --- boot -------------------------------------------------------------------------------------
for (const button of document.querySelectorAll(".tab")) {
  button.addEventListener("click", () => ctx.navigate(button.dataset.tab));
}
window.addEventListener("hashchange", route);
$("theme-toggle").addEventListener("click", toggleTheme);
setupModal();
applyTheme(document.documentElement.dataset.theme === "light" ? "light" : "dark");
$("status-tz").textContent = `times in ${viewerTimeZone}`;
setInterval(() => {
  tickCountdowns();
  $("status-clock").textContent = formatTime(new Date().toISOString());
}, 1000);

(async () => {
  try {
    const who = await api.session();
    if (who.authenticated) await signedIn(who.username);
    else showLogin();
  } catch (err) {
    showLogin(errorText(err));
  }
  document.body.dataset.ready = "true";
})();
