// Fleet overview: tiles coloured by health, last-seen ticking, active alerts and edge
// nodes kept live from the site groups.
import { connectLive, formatAgo, readJson } from "./live.js";

const data = readJson("fleet-data");
const STATE_LABELS = { ok: "OK", warning: "Warning", critical: "Critical", stale: "Stale", nodata: "No data" };
const assets = new Map(); // id -> {lastSeen, alerts: {alertId: severity}, tile}

for (const site of data.sites) {
  for (const a of site.assets) {
    const tile = document.querySelector(`.tile[data-asset="${a.id}"]`);
    assets.set(a.id, { lastSeen: a.last_seen, alerts: { ...a.alerts }, tile });
  }
}

function health(entry, now) {
  const sev = Object.values(entry.alerts);
  if (sev.includes("critical")) return "critical";
  if (sev.includes("warning")) return "warning";
  if (!entry.lastSeen) return "nodata";
  if (now - entry.lastSeen > data.stale_after_s) return "stale";
  return "ok";
}

function paint(entry, now = Date.now() / 1000) {
  if (!entry.tile) return;
  const h = health(entry, now);
  entry.tile.className = `tile health-${h}`;
  entry.tile.querySelector(".tile-state").textContent = STATE_LABELS[h];
  const count = Object.keys(entry.alerts).length;
  entry.tile.title = count ? `${count} active alert${count > 1 ? "s" : ""}` : "";
  entry.tile.querySelector(".last-seen").textContent = entry.lastSeen ? `seen ${formatAgo(entry.lastSeen, now)}` : "no data yet";
}

function paintTotals() {
  let total = 0;
  for (const entry of assets.values()) total += Object.keys(entry.alerts).length;
  document.getElementById("open-alerts").textContent = String(total);
  document.getElementById("open-alerts-plural").textContent = total === 1 ? "" : "s";
  document.querySelector(".summary-pill").classList.toggle("has-alerts", total > 0);
}

function onUpdate(msg) {
  if (msg.type === "asset.update") {
    const entry = assets.get(msg.asset);
    if (!entry) return;
    for (const [ts] of Object.values(msg.values)) entry.lastSeen = Math.max(entry.lastSeen || 0, ts);
    paint(entry);
  } else if (msg.type === "alert.update") {
    const a = msg.alert;
    const entry = assets.get(a.asset);
    if (!entry) return;
    if (a.state === "cleared") delete entry.alerts[a.id];
    else entry.alerts[a.id] = a.severity;
    paint(entry);
    paintTotals();
  } else if (msg.type === "node.status") {
    for (const chip of document.querySelectorAll(".node[data-node]")) {
      if (chip.dataset.node !== msg.node) continue;
      chip.classList.toggle("online", msg.online);
      chip.classList.toggle("offline", !msg.online);
      chip.title = msg.online ? "online" : "offline";
    }
  }
}

for (const entry of assets.values()) paint(entry);
setInterval(() => {
  const now = Date.now() / 1000;
  for (const entry of assets.values()) paint(entry, now);
}, 1000);

connectLive({ path: readJson("live-path"), subscriptions: data.sites.map((s) => ({ site: s.id })), onUpdate });
