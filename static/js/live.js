// The live socket shared by the dashboard pages: reconnects with exponential backoff,
// re-subscribes after every reconnect, and keeps the header badge honest:
// "live" (open), "reconnecting" (closed, retrying), "stale" (closed for a while: what
// the page shows may be out of date). Data is only ever written with textContent.

const STALE_AFTER_MS = 10000;
const MAX_BACKOFF_MS = 15000;

function setBadge(state, text) {
  const badge = document.getElementById("live-badge");
  if (!badge) return;
  badge.hidden = false;
  badge.dataset.state = state;
  badge.textContent = text;
}

// One socket per page and path, however many modules ask (the asset page's chart and its
// twin panel share it): each caller's subscriptions are added to it, and every frame goes
// to every caller.
const sockets = new Map();

export function connectLive({ path, subscriptions, onUpdate, onOpen, onSubscribed }) {
  let shared = sockets.get(path);
  if (!shared) {
    shared = openSocket(path);
    sockets.set(path, shared);
  }
  shared.add({ subscriptions, onUpdate, onOpen, onSubscribed });
  return shared.handle;
}

function openSocket(path) {
  let attempt = 0;
  let closedSince = null;
  let staleTimer = null;
  let socket = null;
  let opened = 0;
  const callers = [];
  const subscriptions = new Map(); // JSON of the request -> request, sent again on every reconnect
  const confirmed = new Map(); // JSON of the request -> the server's "subscribed" frame, this connection
  const keyOf = (sub) => JSON.stringify(sub.asset != null ? { asset: sub.asset } : { site: sub.site });
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;

  function subscribe(sub) {
    socket.send(JSON.stringify({ action: "subscribe", ...sub }));
  }

  function open() {
    const stale = closedSince !== null && Date.now() - closedSince >= STALE_AFTER_MS;
    if (!stale) setBadge(opened ? "reconnecting" : "connecting", opened ? "reconnecting" : "connecting");
    socket = new WebSocket(url);
    socket.addEventListener("open", () => {
      attempt = 0;
      closedSince = null;
      clearTimeout(staleTimer);
      setBadge("live", "live");
      confirmed.clear();
      for (const sub of subscriptions.values()) subscribe(sub);
      const reconnected = opened++ > 0;
      for (const c of callers) if (c.onOpen) c.onOpen(reconnected);
    });
    socket.addEventListener("message", (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (err) {
        console.error("live: a frame that is not JSON", err);
        return;
      }
      if (frame.type === "updates") {
        for (const msg of frame.messages) for (const c of callers) if (c.onUpdate) c.onUpdate(msg);
      } else if (frame.type === "subscribed") {
        confirmed.set(keyOf(frame), frame);
        for (const c of callers) if (c.onSubscribed) c.onSubscribed(frame);
      } else if (frame.type === "refused") {
        console.warn("live: subscription refused", frame);
      }
    });
    socket.addEventListener("close", (ev) => {
      if (ev.code === 4401) {
        setBadge("stale", "logged out");
        return; // reconnecting cannot help: the session is gone
      }
      if (ev.code === 4403) {
        setBadge("stale", "no access");
        return;
      }
      if (closedSince === null) {
        closedSince = Date.now();
        staleTimer = setTimeout(() => setBadge("stale", "stale"), STALE_AFTER_MS);
      }
      if (Date.now() - closedSince < STALE_AFTER_MS) setBadge("reconnecting", "reconnecting");
      const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      setTimeout(open, delay);
    });
  }

  function add(caller) {
    callers.push(caller);
    for (const sub of caller.subscriptions) {
      const key = keyOf(sub);
      if (subscriptions.has(key)) {
        // Already live for another caller: tell this one too, so it can catch up from then.
        const frame = confirmed.get(key);
        if (frame && caller.onSubscribed) queueMicrotask(() => caller.onSubscribed(frame));
        continue;
      }
      subscriptions.set(key, sub);
      if (socket && socket.readyState === WebSocket.OPEN) subscribe(sub); // else sent on open
    }
  }

  open();
  return { add, handle: { get socket() { return socket; } } };
}

export function readJson(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

const timeFormat = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});

const clockFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });

// Today's times as a clock time, older ones with their date.
export function formatTime(ts) {
  if (!ts) return "";
  const d = new Date(ts * 1000);
  return d.toDateString() === new Date().toDateString() ? clockFormat.format(d) : timeFormat.format(d);
}

export function formatAgo(ts, now = Date.now() / 1000) {
  if (!ts) return "no data yet";
  const s = Math.max(0, Math.round(now - ts));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function formatValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  return a >= 1000 ? v.toFixed(0) : a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toFixed(3);
}

// Rewrite every <time data-ts> in local time (the server renders UTC).
export function localizeTimes(root = document) {
  for (const el of root.querySelectorAll("time[data-ts]")) {
    const ts = parseFloat(el.dataset.ts);
    if (ts) el.textContent = formatTime(ts);
  }
}
