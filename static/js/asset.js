// Asset page: one Plotly chart per metric (history from the page, extended live), the
// latest-values table, and the asset's alerts. History reaches the page up to `until`; once
// the socket is subscribed, the page fetches the readings after that (the delta) so there is
// no gap between history and live points; points are deduplicated by timestamp.
import { connectLive, formatAgo, formatTime, formatValue, localizeTimes, readJson } from "./live.js";

const data = readJson("asset-data");
const BUCKET_ORIGIN_S = 946857600;
const charts = new Map(); // metric key -> {div, ts: [], ys: [] (bucket starts, means), lastRaw, tail}
const COLORS = { line: "#3d6fd1", warning: "#c98a1b", critical: "#c0392b", grid: "#eceff3", text: "#5d6678" };
let newest = data.until; // the latest reading time the page holds
let dirty = new Set();

function thresholdShapes(key) {
  const rule = data.rules[key];
  if (!rule) return [];
  const shapes = [];
  for (const [name, color] of [["warning", COLORS.warning], ["critical", COLORS.critical]]) {
    for (const side of ["above", "below"]) {
      const y = rule[`${name}_${side}`];
      if (y === null || y === undefined) continue;
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: y, y1: y, line: { color, width: 1, dash: "dot" } });
    }
  }
  return shapes;
}

function yRange(c, shapes) {
  // Fit the data, and the threshold lines that are near it: a far-away critical line
  // would flatten the signal into a line at the bottom.
  if (!c.ys.length) return undefined;
  let lo = Math.min(...c.ys);
  let hi = Math.max(...c.ys);
  const span = Math.max(hi - lo, Math.abs(hi) * 0.01, 1e-6);
  for (const s of shapes) {
    if (s.y0 >= lo - 3 * span && s.y0 <= hi + 3 * span) {
      lo = Math.min(lo, s.y0);
      hi = Math.max(hi, s.y0);
    }
  }
  const pad = (hi - lo || span) * 0.08;
  return [lo - pad, hi + pad];
}

function layout(key, c) {
  const shapes = thresholdShapes(key);
  const range = yRange(c, shapes);
  const xRange = windowRange(c);
  const visibleS = (xRange[1] - xRange[0]) / 1000;
  const tickformat = visibleS > 86400 ? "%b %d" : visibleS > 600 ? "%H:%M" : "%H:%M:%S";
  return {
    height: 170, margin: { l: 52, r: 10, t: 6, b: 24 }, showlegend: false,
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 11, color: COLORS.text },
    xaxis: { type: "date", gridcolor: COLORS.grid, linecolor: COLORS.grid, range: xRange, tickformat, nticks: 6 },
    yaxis: { gridcolor: COLORS.grid, zeroline: false, range, autorange: range ? false : true },
    shapes,
  };
}

function windowRange(c) {
  // The selected range; while an asset has less history than that, start near its first point.
  const end = Math.max(Date.now(), newest * 1000);
  let start = end - data.span_s * 1000;
  if (c && c.ts.length) start = Math.max(start, Math.min(c.ts[0] * 1000 - 10000, end - 60000));
  return [new Date(start), new Date(end)];
}

function trim(c) {
  // Keep the sliding window: drop points older than the selected range.
  const cutoff = Date.now() / 1000 - data.span_s - data.bucket_s;
  let drop = 0;
  while (drop < c.ts.length && c.ts[drop] < cutoff) drop += 1;
  if (drop) {
    c.ts = c.ts.slice(drop);
    c.ys = c.ys.slice(drop);
  }
}

function addHistory(key, points) {
  // The server's buckets: [bucket start, mean], oldest first.
  const c = charts.get(key);
  if (!c) return;
  for (const [ts, v] of points) {
    if (v === null) continue;
    c.ts.push(ts);
    c.ys.push(v);
    newest = Math.max(newest, ts);
  }
  dirty.add(key);
}

function addReading(key, ts, v) {
  // A reading after the history (live, or the catch-up): folded into the chart's bucket, so
  // the live tail is drawn at the same resolution as the history, not as raw points on top.
  const c = charts.get(key);
  if (!c || v === null || ts <= c.lastRaw) return;
  c.lastRaw = ts;
  newest = Math.max(newest, ts);
  // The stores' bucket origin (ingest/timeseries/buckets.py: 2000-01-03 UTC, a Monday).
  const bucket = BUCKET_ORIGIN_S + Math.floor((ts - BUCKET_ORIGIN_S) / data.bucket_s) * data.bucket_s;
  const last = c.ts.length ? c.ts[c.ts.length - 1] : null;
  if (last === null || bucket > last) {
    c.ts.push(bucket);
    c.ys.push(v);
    c.tail = { bucket, sum: v, n: 1 };
  } else if (bucket === last) {
    // The history's last bucket was still filling when the page was made: count it as one reading.
    if (!c.tail || c.tail.bucket !== bucket) c.tail = { bucket, sum: c.ys[c.ys.length - 1], n: 1 };
    c.tail.sum += v;
    c.tail.n += 1;
    c.ys[c.ys.length - 1] = c.tail.sum / c.tail.n;
  } else {
    return; // a reading for a bucket already closed: it was averaged in the history
  }
  trim(c);
  dirty.add(key);
}

function draw(c, key) {
  const trace = { x: c.ts.map((t) => new Date(t * 1000)), y: c.ys, type: "scatter", mode: "lines", line: { color: COLORS.line, width: 1.6 }, hovertemplate: "%{y:.3f}<extra></extra>" };
  window.Plotly.react(c.div, [trace], layout(key, c), { displayModeBar: false, responsive: true });
  c.div.dataset.points = String(c.ts.length);
  c.div.dataset.lastTs = c.ts.length ? String(c.ts[c.ts.length - 1]) : "";
  c.div.dataset.lastY = c.ys.length ? String(c.ys[c.ys.length - 1]) : "";
}

// A Plotly chart costs some 30-50 ms to draw: the charts on screen are drawn first, the others
// one at a time when the browser is idle (or at once when scrolled to), so the page is usable
// as soon as what the user sees is there.
function redraw() {
  const later = new Set();
  for (const key of dirty) {
    const c = charts.get(key);
    if (c.shown) draw(c, key);
    else later.add(key);
  }
  dirty = later;
  if (later.size) drawOffscreenWhenIdle();
}

let idleQueued = false;
function drawOffscreenWhenIdle() {
  if (idleQueued) return;
  idleQueued = true;
  const idle = window.requestIdleCallback || ((fn) => setTimeout(fn, 50));
  idle(() => {
    idleQueued = false;
    const key = dirty.values().next().value;
    if (key === undefined) return;
    charts.get(key).shown = true; // drawn once, it is kept current like the visible ones
    dirty.delete(key);
    draw(charts.get(key), key);
    if (dirty.size) drawOffscreenWhenIdle();
  }, { timeout: 1000 });
}

const onScreen = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    if (!entry.isIntersecting) continue;
    const key = entry.target.dataset.metric;
    const c = charts.get(key);
    if (c && !c.shown) {
      c.shown = true;
      dirty.add(key);
      scheduleRedraw();
    }
  }
}, { rootMargin: "100px" });

function scheduleRedraw() {
  requestAnimationFrame(redraw);
}

function setLatest(key, ts, value) {
  const row = document.querySelector(`#latest-values tr[data-metric="${CSS.escape(key)}"]`);
  if (!row) return;
  const time = row.querySelector("time");
  const current = parseFloat(time.dataset.ts || "0");
  if (current && ts < current) return;
  time.dataset.ts = String(ts);
  time.textContent = formatTime(ts);
  row.querySelector(".value").textContent = formatValue(value);
  row.classList.remove("flash");
  void row.offsetWidth; // restart the highlight animation
  row.classList.add("flash");
}

function setLastSeen(ts) {
  const el = document.getElementById("asset-last-seen");
  el.dataset.ts = String(ts);
  el.textContent = `last seen ${formatAgo(ts)}`;
}

// --- alerts --------------------------------------------------------------------------------

function fillAlert(li, a) {
  li.dataset.alert = String(a.id);
  li.className = `alert-item sev-${a.severity} state-${a.state}`;
  li.querySelector(".sev-badge").textContent = a.severity;
  li.querySelector(".alert-title").textContent = a.title;
  li.querySelector(".alert-state").textContent = a.state;
  const opened = li.querySelector(".alert-opened");
  opened.dataset.ts = String(a.opened_at);
  opened.textContent = formatTime(a.opened_at);
  li.querySelector(".alert-ack").textContent = a.acknowledged_by ? ` · acknowledged by ${a.acknowledged_by}` : "";
}

function onAlert(a) {
  const list = document.getElementById("asset-alerts");
  let li = list.querySelector(`li[data-alert="${a.id}"]`);
  if (!li) {
    li = document.getElementById("alert-item-template").content.firstElementChild.cloneNode(true);
    list.prepend(li);
  }
  fillAlert(li, a);
  document.getElementById("no-alerts").hidden = true;
}

// --- live ----------------------------------------------------------------------------------

function onUpdate(msg) {
  if (msg.type === "asset.update" && msg.asset === data.asset) {
    let latest = 0;
    for (const [key, [ts, v]] of Object.entries(msg.values)) {
      addReading(key, ts, v);
      setLatest(key, ts, v);
      latest = Math.max(latest, ts);
    }
    if (latest) setLastSeen(latest);
    scheduleRedraw();
  } else if (msg.type === "alert.update" && msg.alert.asset === data.asset) {
    onAlert(msg.alert);
  }
}

async function catchUp() {
  const since = newest;
  try {
    const resp = await fetch(`/assets/${data.asset}/delta?since=${encodeURIComponent(since)}`, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
    const delta = await resp.json();
    for (const [key, points] of Object.entries(delta.series)) {
      for (const [ts, v] of points) addReading(key, ts, v);
      if (points.length) {
        const [ts, v] = points[points.length - 1];
        setLatest(key, ts, v);
      }
    }
    scheduleRedraw();
  } catch (err) {
    console.error("live: catch-up after", since, "failed", err);
  }
}

for (const div of document.querySelectorAll(".chart[data-metric]")) {
  const key = div.dataset.metric;
  const meta = data.metrics.find((m) => m.key === key);
  charts.set(key, { div, ts: [], ys: [], lastRaw: data.until, tail: null, unit: meta ? meta.unit : "", shown: false });
  const box = div.getBoundingClientRect();
  if (box.top < window.innerHeight + 100 && box.bottom > -100) charts.get(key).shown = true;
  onScreen.observe(div);
  addHistory(key, data.series[key] || []);
}
newest = Math.max(newest, data.until);
redraw();
localizeTimes();
setInterval(() => {
  const el = document.getElementById("asset-last-seen");
  if (el.dataset.ts) el.textContent = `last seen ${formatAgo(parseFloat(el.dataset.ts))}`;
}, 1000);

connectLive({
  path: readJson("live-path"),
  subscriptions: [{ asset: data.asset }],
  onUpdate,
  onSubscribed: (frame) => { if (frame.asset === data.asset) catchUp(); },
});
