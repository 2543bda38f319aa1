// The REST client. Every call goes to the same-origin /api (or /web) endpoints with the session
// cookie; every write carries the CSRF token. Failures become ApiError with a readable message.

export class ApiError extends Error {
  constructor(status, detail, errors = {}, body = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.errors = errors && typeof errors === "object" ? errors : {};
    this.body = body;
  }
}

/** What a newestOnly() request resolves to when a newer one was started meanwhile. */
export const STALE = Symbol("stale");

/**
 * For a list that reloads as its filters change: on a busy server answers come back out of order,
 * and an older one arriving last would show results for filters no longer chosen. Each call of
 * the returned function wraps one request; it resolves to the answer (or throws its error) only
 * if no newer request was wrapped since, else to STALE, which the caller drops.
 */
export function newestOnly() {
  let newest = 0;
  return async (request) => {
    const mine = ++newest;
    try {
      const answer = await request;
      return mine === newest ? answer : STALE;
    } catch (err) {
      if (mine !== newest) return STALE;
      throw err;
    }
  };
}

const listeners = new Set();
/** Called with the ApiError whenever the server says 401/403 (signed out or not staff). */
export function onAuthRequired(fn) {
  listeners.add(fn);
}

function readCookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// Read fresh on every write: Django rotates the token at login.
export function csrfToken() {
  return readCookie("csrftoken");
}

const STATUS_WORDS = {
  400: "The request was not valid.",
  401: "You are not signed in.",
  403: "You do not have permission (staff users only).",
  404: "Not found.",
  409: "That is not possible right now.",
  429: "Too many requests.",
  500: "The server had an internal error.",
  502: "The server is unreachable (bad gateway).",
  503: "The service is unavailable.",
};

/** Turn any value the server might send as `detail` into words. */
export function asText(value) {
  if (value == null) return "";
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(asText).filter(Boolean).join(" ");
  if (typeof value === "object") {
    return Object.entries(value)
      .map(([key, v]) => `${key}: ${asText(v)}`)
      .join("; ");
  }
  return String(value);
}

/**
 * fetch wrapper. Returns the parsed JSON body. Throws ApiError for HTTP errors and network failures.
 * `okStatuses` lets a caller accept e.g. 503 from /api/health, whose body is still useful.
 */
export async function request(method, path, { body, query, okStatuses = [] } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
    }
    const qs = params.toString();
    if (qs) url += `?${qs}`;
  }
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (method !== "GET" && method !== "HEAD") {
    headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "Cannot reach the server. Is it running, and is the network up?");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch (err) {
      data = null;
    }
  }
  if (response.ok || okStatuses.includes(response.status)) {
    return data ?? {};
  }
  let detail = asText(data && typeof data === "object" ? data.detail : "");
  if (!detail && response.status === 403 && /CSRF/i.test(text)) {
    detail = "The security check (CSRF) failed. Reload the page and try again.";
  }
  if (!detail) detail = STATUS_WORDS[response.status] || `The server answered HTTP ${response.status}.`;
  if (response.status === 429) {
    const retry = response.headers.get("Retry-After");
    if (retry) detail += ` Try again in ${retry} s.`;
  }
  const error = new ApiError(response.status, detail, data && data.errors, data);
  if (response.status === 401 || response.status === 403) {
    for (const fn of listeners) fn(error);
  }
  throw error;
}

/** Words for any error: ApiError detail, or a plain Error's message. Never "[object Object]". */
export function errorText(err) {
  if (err instanceof ApiError) return err.detail;
  if (err && typeof err.message === "string" && err.message) return err.message;
  return asText(err) || "Something went wrong.";
}

export const api = {
  session: () => request("GET", "/web/session"),
  login: (username, password) => request("POST", "/web/login", { body: { username, password } }),
  logout: () => request("POST", "/web/logout"),
  config: () => request("GET", "/web/config"),

  health: () => request("GET", "/api/health", { okStatuses: [503] }),
  stats: () => request("GET", "/api/stats"),

  secrets: () => request("GET", "/api/admin/secrets"),
  createSecret: (data) => request("POST", "/api/admin/secrets", { body: data }),
  deleteSecret: (id) => request("DELETE", `/api/admin/secrets/${encodeURIComponent(id)}`),

  apiKeys: () => request("GET", "/api/admin/keys"),
  createApiKey: (data) => request("POST", "/api/admin/keys", { body: data }),
  revokeApiKey: (id) => request("POST", `/api/admin/keys/${encodeURIComponent(id)}/revoke`),

  jobs: (query) => request("GET", "/api/jobs", { query }),
  job: (id) => request("GET", `/api/jobs/${encodeURIComponent(id)}`),
  createJob: (data) => request("POST", "/api/jobs", { body: data }),
  updateJob: (id, data) => request("PUT", `/api/jobs/${encodeURIComponent(id)}`, { body: data }),
  deleteJob: (id) => request("DELETE", `/api/jobs/${encodeURIComponent(id)}`),
  pauseJob: (id) => request("POST", `/api/jobs/${encodeURIComponent(id)}/pause`),
  resumeJob: (id) => request("POST", `/api/jobs/${encodeURIComponent(id)}/resume`),
  jobLogs: (id, query) => request("GET", `/api/jobs/${encodeURIComponent(id)}/logs`, { query }),

  logs: (query) => request("GET", "/api/logs", { query }),

  scripts: (query) => request("GET", "/api/scripts", { query }),
  script: (id) => request("GET", `/api/scripts/${encodeURIComponent(id)}`),
  createScript: (data) => request("POST", "/api/scripts", { body: data }),
  updateScript: (id, data) => request("PATCH", `/api/scripts/${encodeURIComponent(id)}`, { body: data }),
  deleteScript: (id) => request("DELETE", `/api/scripts/${encodeURIComponent(id)}`),
  runScript: (id) => request("POST", `/api/scripts/${encodeURIComponent(id)}/run`),
  scriptRuns: (id, query) => request("GET", `/api/scripts/${encodeURIComponent(id)}/runs`, { query }),
  scriptEnvironment: (id) => request("GET", `/api/scripts/${encodeURIComponent(id)}/environment`),
  checkEnvironment: (id) => request("POST", `/api/scripts/${encodeURIComponent(id)}/environment/check`),
  rebuildEnvironment: (id) => request("POST", `/api/scripts/${encodeURIComponent(id)}/environment/rebuild`),
  schedulePreview: (schedule) => request("POST", "/api/scripts/schedule-preview", { body: { schedule } }),
  scriptVersions: (id) => request("GET", `/api/scripts/${encodeURIComponent(id)}/versions`),
  scriptVersionDiff: (id, a, b) => request("GET", `/api/scripts/${encodeURIComponent(id)}/versions/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`),
  restoreScriptVersion: (id, n) => request("POST", `/api/scripts/${encodeURIComponent(id)}/versions/${encodeURIComponent(n)}/restore`),
  scriptTemplates: () => request("GET", "/api/script-templates"),
  pythons: () => request("GET", "/api/pythons"),
  importBundle: (bundle, { dryRun }) => request("POST", "/api/import", { body: bundle, query: { dry_run: dryRun ? "true" : "" } }),
  run: (id) => request("GET", `/api/runs/${encodeURIComponent(id)}`),
  cancelRun: (id) => request("POST", `/api/runs/${encodeURIComponent(id)}/cancel`),
};
