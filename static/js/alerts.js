// Alerts page: rows update live (opened, escalated, acknowledged, cleared by anyone); new
// alerts that match the filters appear on top. Acknowledging is a plain form POST.
import { connectLive, formatTime, localizeTimes, readJson } from "./live.js";

const filters = readJson("alert-filters-data");
const siteIds = readJson("alert-sites");
const tbody = document.querySelector("#alerts-table tbody");

function matches(a) {
  if (filters.site !== null && a.site !== filters.site) return false;
  if (filters.asset !== null && a.asset !== filters.asset) return false;
  if (filters.severity && a.severity !== filters.severity) return false;
  if (filters.state === "active" || filters.state === "recent") return a.state === "open" || a.state === "acknowledged";
  return filters.state === "all" || a.state === filters.state;
}

function setTime(el, ts) {
  el.dataset.ts = ts ? String(ts) : "";
  el.textContent = ts ? formatTime(ts) : "";
}

function fill(tr, a) {
  tr.dataset.alert = String(a.id);
  tr.className = `alert-row sev-${a.severity} state-${a.state}`;
  tr.querySelector(".sev-badge").textContent = a.severity;
  tr.querySelector(".alert-title").textContent = a.title;
  tr.querySelector(".alert-message").textContent = a.message;
  const source = (a.source === "edge" ? `from the edge${a.occurrences > 1 ? ` · ${a.occurrences} events` : ""}` : "rule")
    + (a.reopen_count ? ` · came back ${a.reopen_count}×` : "");
  tr.querySelector(".alert-source").textContent = source;
  const link = tr.querySelector(".alert-asset a");
  link.textContent = a.asset_name;
  if (a.asset) link.href = `/assets/${a.asset}/`;
  tr.querySelector(".alert-site").textContent = a.site_name;
  setTime(tr.querySelector(".alert-opened"), a.opened_at);
  tr.querySelector(".alert-state").textContent = a.state;
  tr.querySelector(".ack-who").textContent = a.acknowledged_by;
  setTime(tr.querySelector(".ack-when"), a.acknowledged_at);
  tr.querySelector(".ack-comment").textContent = a.ack_comment;
  const form = tr.querySelector(".ack-form");
  if (form) {
    form.action = `/alerts/${a.id}/ack/`;
    form.hidden = a.state !== "open";
  }
}

function onUpdate(msg) {
  if (msg.type !== "alert.update") return;
  const a = msg.alert;
  let tr = tbody.querySelector(`tr[data-alert="${a.id}"]`);
  if (!tr) {
    if (!matches(a)) return;
    tr = document.getElementById("alert-row-template").content.firstElementChild.cloneNode(true);
    tbody.prepend(tr);
    document.getElementById("no-alerts").hidden = true;
  }
  fill(tr, a);
  tr.classList.add("flash");
}

localizeTimes();
const sites = filters.site !== null ? [filters.site] : siteIds;
connectLive({ path: readJson("live-path"), subscriptions: sites.map((id) => ({ site: id })), onUpdate });
