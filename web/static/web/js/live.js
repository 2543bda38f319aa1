// Live updates. One EventSource on /api/events for the whole page: tabs subscribe to the kinds
// of change they show (job, log, run, script) and refresh what is on screen within a second.
// When the stream drops, every subscriber's refresh runs every 5 s instead, the status bar says
// so, and the stream is tried again; when it is back, the view is refreshed once and polling
// stops. A run's output has its own stream (followRun).

const FALLBACK_POLL_MS = 5000;
// A stream that ends on purpose (its lifetime, a server restart) reconnects within this time;
// only a longer gap counts as a drop.
const DROP_GRACE_MS = 3000;
const RETRY_MS = 10000;

const subscribers = new Set(); // { kinds: Set, onEvent(name, data), refresh() }
const state = { source: null, live: false, pollTimer: null, dropTimer: null, retryTimer: null, indicator: null, print: null, announced: false };

/** Subscribe to changes of `kinds`; `refresh()` runs when the page must reload what it shows
 * (after a reconnect, a reset, or every 5 s while the stream is down). Returns unsubscribe. */
export function subscribe(kinds, onEvent, refresh) {
  const entry = { kinds: new Set(kinds), onEvent, refresh };
  subscribers.add(entry);
  return () => subscribers.delete(entry);
}

/** Like subscribe, for a part of the page: it unsubscribes itself once `dom` has been on the
 * page and is no more (its view was replaced). */
export function subscribeWhile(dom, kinds, onEvent, refresh) {
  let seen = false;
  let unsubscribe = null;
  const alive = () => {
    if (dom.isConnected) seen = true;
    else if (seen) unsubscribe();
    return dom.isConnected;
  };
  unsubscribe = subscribe(
    kinds,
    (kind, data) => alive() && onEvent(kind, data),
    () => alive() && refresh && refresh(),
  );
  return unsubscribe;
}

/** Debounce: many changes in a burst become one reload. */
export function soon(fn, ms = 150) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

function refreshAll() {
  for (const entry of subscribers) {
    try {
      entry.refresh && entry.refresh();
    } catch (err) {
      /* one view failing must not stop the others */
    }
  }
}

function show(live, text) {
  state.live = live;
  const el = state.indicator;
  if (!el) return;
  el.textContent = text;
  el.className = `live-status ${live ? "live-on" : "live-off"}`;
  el.title = live ? "Changes appear as they happen (server-sent events)." : "The live stream is down; the page polls instead.";
}

function fallBack(reason) {
  if (state.pollTimer) return;
  show(false, `⚠ live updates lost: ${reason}; refreshing every 5 s`);
  if (state.print) state.print(`live updates lost (${reason}); refreshing every 5 s until they are back`, "error");
  state.pollTimer = setInterval(refreshAll, FALLBACK_POLL_MS);
  refreshAll();
}

function connected() {
  clearTimeout(state.dropTimer);
  state.dropTimer = null;
  const wasPolling = Boolean(state.pollTimer);
  clearInterval(state.pollTimer);
  state.pollTimer = null;
  show(true, "● live");
  if (wasPolling && state.print) state.print("live updates are back");
}

function open() {
  clearTimeout(state.retryTimer);
  const source = new EventSource("/api/events");
  state.source = source;
  source.addEventListener("open", connected);
  // `ready`: a fresh stream; what happened before it is reloaded once. `reset`: the stream
  // could not resume from where this page was, so it reloads too.
  for (const name of ["ready", "reset"]) source.addEventListener(name, () => refreshAll());
  for (const name of ["job", "log", "run", "script"]) {
    source.addEventListener(name, (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      for (const entry of subscribers) if (entry.kinds.has(name)) entry.onEvent(name, data);
    });
  }
  source.addEventListener("error", () => {
    if (state.source !== source) return;
    if (source.readyState === EventSource.CLOSED) {
      // Refused (503: too many streams, 401/403) or gone: poll, and try again later.
      fallBack("the server refused the stream");
      state.retryTimer = setTimeout(open, RETRY_MS);
      return;
    }
    // The browser reconnects by itself (resuming with Last-Event-ID); poll if it takes long.
    if (!state.dropTimer) state.dropTimer = setTimeout(() => fallBack("the connection dropped"), DROP_GRACE_MS);
  });
}

/** Start the page's stream (after sign-in). */
export function startLive({ indicator, print } = {}) {
  state.indicator = indicator || state.indicator;
  state.print = print || state.print;
  stopLive();
  show(false, "○ connecting…");
  open();
}

/** Stop it (sign-out): no stream, no polling. */
export function stopLive() {
  if (state.source) state.source.close();
  state.source = null;
  clearTimeout(state.dropTimer);
  clearTimeout(state.retryTimer);
  clearInterval(state.pollTimer);
  state.dropTimer = state.retryTimer = state.pollTimer = null;
  if (state.indicator) state.indicator.textContent = "";
}

/** True while changes arrive by the stream (false: the page is polling). */
export function isLive() {
  return state.live;
}

/**
 * Follow one run's output: `onOutput(text)` for each piece as it is written, `onState(state)`
 * while it is queued or running, `onEnd(run)` once with the finished run. `onDrop()` when the
 * stream fails for good (the caller polls instead). Returns a function that stops following.
 * The browser resumes a dropped stream by itself (Last-Event-ID = characters received).
 */
export function followRun(runId, { onOutput, onState, onEnd, onDrop }) {
  const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/stream`);
  let done = false;
  let dropTimer = null;
  const parse = (event) => {
    try {
      return JSON.parse(event.data);
    } catch (err) {
      return null;
    }
  };
  source.addEventListener("open", () => {
    clearTimeout(dropTimer);
    dropTimer = null;
  });
  source.addEventListener("output", (event) => {
    const data = parse(event);
    if (data) onOutput(data.text);
  });
  source.addEventListener("state", (event) => {
    const data = parse(event);
    if (data && onState) onState(data.state);
  });
  source.addEventListener("end", (event) => {
    done = true;
    source.close();
    const data = parse(event);
    if (data) onEnd(data);
  });
  source.addEventListener("error", () => {
    if (done) return;
    if (source.readyState === EventSource.CLOSED) {
      done = true;
      onDrop && onDrop();
    } else if (!dropTimer) {
      dropTimer = setTimeout(() => {
        if (done) return;
        done = true;
        source.close();
        onDrop && onDrop();
      }, DROP_GRACE_MS);
    }
  });
  return () => {
    done = true;
    clearTimeout(dropTimer);
    source.close();
  };
}
