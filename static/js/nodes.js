// Edge nodes page: the retained status heartbeat of each node, live from its site group.
import { connectLive, formatAgo, readJson } from "./live.js";
import { renderDevices } from "./node_devices.js";

function text(v, suffix = "") {
  return v === null || v === undefined ? "–" : `${v}${suffix}`;
}

function onUpdate(msg) {
  if (msg.type !== "node.status") return;
  const tr = document.querySelector(`#nodes-table tr[data-node="${CSS.escape(msg.node)}"]`);
  if (!tr) return;
  const s = msg.status || {};
  tr.className = msg.online ? "is-online" : "is-offline";
  tr.querySelector(".state-badge").textContent = msg.online ? "online" : "offline";
  const seen = tr.querySelector(".last-seen");
  seen.dataset.ts = String(Date.now() / 1000);
  seen.textContent = formatAgo(Date.now() / 1000);
  const versions = tr.querySelector(".versions");
  versions.replaceChildren();
  for (const [k, v] of Object.entries(s.versions || {})) {
    const span = document.createElement("span");
    span.className = "version";
    span.textContent = `${k} ${v}`;
    versions.append(span);
  }
  tr.querySelector(".buffer").textContent = text(s.buffer_depth);
  tr.querySelector(".dropped").textContent = text(s.dropped);
  tr.querySelector(".cpu").textContent = s.cpu_percent === undefined ? "–" : `${Number(s.cpu_percent).toFixed(1)} %`;
  tr.querySelector(".memory").textContent = s.memory_mb === undefined ? "–" : `${Number(s.memory_mb).toFixed(0)} MB`;
  renderDevices(tr.querySelector(".devices"), s.devices);
}

function tick() {
  for (const el of document.querySelectorAll(".last-seen")) {
    el.textContent = el.dataset.ts ? formatAgo(parseFloat(el.dataset.ts)) : "never";
  }
}

tick();
setInterval(tick, 1000);
connectLive({ path: readJson("live-path"), subscriptions: readJson("node-sites").map((id) => ({ site: id })), onUpdate });
