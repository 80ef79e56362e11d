// Field devices of an edge node, from its status heartbeat ("devices"): the same markup as
// templates/partials/node_devices.html, rebuilt on each live status update.
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children.filter((c) => c !== null && c !== undefined));
  return e;
}

function deviceRow(d) {
  const problems = el("td", { class: "problems" });
  if (d.state === "down" && d.last_error) problems.append(el("div", {}, d.last_error));
  for (const b of d.bad || []) problems.append(el("div", {}, el("code", {}, b.point), `: ${b.reason}`));
  const points = el("td", { class: "num" }, String(d.points));
  if (d.bad_points) points.append(", ", el("span", { class: "dev-bad" }, `${d.bad_points} bad`));
  return el("tr", { class: `dev-${d.state}`, "data-device": d.device },
    el("td", {}, el("strong", {}, d.device), el("div", { class: "muted" }, d.endpoint || "")),
    el("td", {}, d.protocol),
    el("td", {}, el("span", { class: "dev-state" }, d.state)),
    el("td", {}, d.mode || "–"),
    points,
    problems);
}

export function renderDevices(cell, devices) {
  if (!cell) return;
  if (!devices || !devices.length) {
    cell.replaceChildren(el("span", { class: "muted" }, "–"));
    return;
  }
  const open = cell.querySelector("details")?.open ?? false;
  const summary = el("summary", {}, el("span", { class: "dev-count" }, `${devices.length} device${devices.length === 1 ? "" : "s"}`));
  for (const d of devices) summary.append(el("span", { class: `dev-dot dev-${d.state}`, title: `${d.device}: ${d.state}` }));
  const head = el("tr", {}, ...["Device", "Protocol", "State", "Read by", "Points", "Problems"].map(
    (h) => el("th", h === "Points" ? { class: "num" } : {}, h)));
  const table = el("table", { class: "devices-table" }, el("thead", {}, head), el("tbody", {}, ...devices.map(deviceRow)));
  const details = el("details", { class: "node-devices" }, summary, table);
  details.open = open;
  cell.replaceChildren(details);
}
