// A scenario run's page: the progress bar follows the run's socket (reconnecting with backoff)
// until the run ends, then the page reloads to show the results; with results, Plotly charts
// of the comparison, failure risk, RUL, costs and one asset. Names only ever reach the DOM
// through textContent, and Plotly (which reads a little HTML) gets them entity-escaped.

const page = JSON.parse(document.getElementById("run-data").textContent);
const ACTIVE = new Set(["queued", "running"]);
const COLORS = { baseline: "#8a93a5", scenario: "#3d6fd1", others: ["#c98a1b", "#2f8a57", "#8e44ad", "#c0392b", "#16a085"] };
const FONT = { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 11, color: "#5d6678" };

function plotlyText(s) {
  return String(s ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// --- progress ---------------------------------------------------------------------------------

function showProgress(msg) {
  const bar = document.getElementById("progress-bar");
  const text = document.getElementById("progress-text");
  const state = document.getElementById("run-state");
  // Two phases on one bar: the replications, then the check of the recommendations.
  bar.max = msg.total + msg.check_total;
  bar.value = msg.done + msg.checked;
  text.textContent = `${msg.done} / ${msg.total} ${text.dataset.unit}`;  // both variants' when the baseline is compared
  const check = document.getElementById("check-text");
  check.hidden = !msg.check_total;
  check.textContent = `recommendations checked on ${msg.checked} / ${msg.check_total}`;
  state.dataset.state = msg.state;
  state.textContent = msg.state;
  const error = document.getElementById("run-error");
  error.hidden = !msg.error;
  error.textContent = msg.error || "";
}

function followProgress() {
  let attempt = 0;
  let finished = false;
  let pollTimer = null;
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${page.run.ws_path}`;

  function handle(msg) {
    if (finished || msg.type !== "scenario.progress") return;
    showProgress(msg);
    if (!ACTIVE.has(msg.state)) {
      finished = true;
      clearInterval(pollTimer);
      // The results (or the reason it stopped) are rendered by the server.
      setTimeout(() => location.reload(), msg.state === "done" ? 150 : 600);
    }
  }

  // While the socket is down (a proxy without WebSockets, a restart), poll the status URL.
  function startPolling() {
    if (pollTimer !== null || finished) return;
    pollTimer = setInterval(async () => {
      try {
        const response = await fetch(page.run.status_url, { headers: { Accept: "application/json" } });
        if (response.ok) handle(await response.json());
      } catch (err) {
        console.warn("scenario: status poll failed", err);
      }
    }, 2000);
  }

  function stopPolling() {
    clearInterval(pollTimer);
    pollTimer = null;
  }

  function open() {
    const socket = new WebSocket(url);
    socket.addEventListener("open", () => { attempt = 0; stopPolling(); });
    socket.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (err) { console.error("scenario: a frame that is not JSON", err); return; }
      handle(msg);
      if (finished) socket.close();
    });
    socket.addEventListener("close", (ev) => {
      if (finished || ev.code === 4401 || ev.code === 4403 || ev.code === 4404) return;
      startPolling();
      const delay = Math.min(15000, 500 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      setTimeout(open, delay);
    });
  }
  open();
}

// --- charts -----------------------------------------------------------------------------------

// The legend sits above the plot (never over the axis labels) and every axis makes room for
// its labels, at 1,400 px and at 390 px alike.
function layout(extra = {}) {
  const narrow = window.innerWidth < 600;
  const axes = {};
  for (const name of ["xaxis", "yaxis", "yaxis2"]) {
    if (extra[name] || name !== "yaxis2") axes[name] = { automargin: true, ...(extra[name] || {}) };
  }
  return {
    height: narrow ? 300 : 320, margin: { l: 50, r: 14, t: 10, b: 40 }, font: FONT, showlegend: true,
    legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom" },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", ...extra, ...axes,
  };
}

function dates(r) {
  const start = new Date(`${r.start_date}T00:00:00Z`);
  return r.day_grid.map((d) => new Date(start.getTime() + d * 86400000).toISOString().slice(0, 10));
}

function spread(summary) {
  return { p50: summary.p50, plus: summary.p90 === null ? 0 : summary.p90 - summary.p50, minus: summary.p10 === null ? 0 : summary.p50 - summary.p10 };
}

function drawComparison(r) {
  const c = r.comparison;
  const div = document.getElementById("comparison-chart");
  if (!c || !div) return;
  const keys = Object.keys(c.scenarios[0].fleet);
  const traces = c.scenarios.map((s, i) => ({
    type: "bar", name: plotlyText(s.name), x: keys.map((k) => plotlyText(c.labels[k])),
    y: keys.map((k) => s.fleet[k].delta_pct), marker: { color: i === 0 ? COLORS.scenario : COLORS.others[(i - 1) % COLORS.others.length] },
  }));
  Plotly.newPlot(div, traces, layout({ barmode: "group", yaxis: { title: { text: "% change vs baseline" }, zeroline: true } }), { displayModeBar: false, responsive: true });
  const body = document.querySelector("#comparison-table tbody");
  for (const k of keys) {
    const tr = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = c.labels[k];
    tr.append(label);
    const base = document.createElement("td");
    base.className = "num";
    base.textContent = fmtFor(k, c.scenarios[0].fleet[k].baseline);
    tr.append(base);
    for (const s of c.scenarios) {
      const td = document.createElement("td");
      td.className = "num";
      const d = s.fleet[k];
      td.textContent = `${fmtFor(k, d.scenario)}${d.delta_pct === null ? "" : ` (${d.delta_pct > 0 ? "+" : ""}${d.delta_pct} %)`}`;
      tr.append(td);
    }
    body.append(tr);
  }
}

// Availability near 1 reads as a percentage with two decimals (99.95 %), not "1.000".
function fmtFor(key, v) {
  if (key.includes("availability") && v !== null && v !== undefined) return `${(v * 100).toFixed(2)} %`;
  return fmt(v);
}

function fmt(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  return a >= 1000 ? Math.round(v).toLocaleString() : a >= 10 ? v.toFixed(1) : v.toFixed(3);
}

function variants(r) {
  const out = [["scenario", r.names.scenario, r.fleet.scenario]];
  if (r.fleet.baseline) out.unshift(["baseline", r.names.baseline, r.fleet.baseline]);
  return out;
}

function drawRisk(r) {
  const x = dates(r);
  const traces = variants(r).map(([key, name, f]) => ({
    type: "scatter", mode: "lines", name: plotlyText(`${name}: P(any failure)`), x, y: f.any_failure_probability, line: { color: COLORS[key] },
  }));
  for (const [key, name, f] of variants(r)) {
    traces.push({ type: "scatter", mode: "lines", name: plotlyText(`${name}: expected failed assets`), x, y: f.expected_failed_assets, yaxis: "y2", line: { color: COLORS[key], dash: "dot" } });
  }
  Plotly.newPlot("risk-chart", traces, layout({
    yaxis: { title: { text: "probability" }, range: [0, 1] },
    yaxis2: { title: { text: "assets" }, overlaying: "y", side: "right", rangemode: "tozero" },
    xaxis: { type: "date" },
  }), { displayModeBar: false, responsive: true });
}

function drawRul(r) {
  const names = r.assets.map((a) => plotlyText(a.name));
  const traces = [];
  if (r.fleet.baseline) {
    const s = r.assets.map((a) => spread(a.baseline_rul_days));
    traces.push({ type: "scatter", mode: "markers", name: plotlyText(r.names.baseline), x: names, y: s.map((v) => v.p50),
      error_y: { type: "data", symmetric: false, array: s.map((v) => v.plus), arrayminus: s.map((v) => v.minus), color: COLORS.baseline }, marker: { color: COLORS.baseline } });
  }
  const s = r.assets.map((a) => spread(a.rul_days));
  traces.push({ type: "scatter", mode: "markers", name: plotlyText(r.names.scenario), x: names, y: s.map((v) => v.p50),
    error_y: { type: "data", symmetric: false, array: s.map((v) => v.plus), arrayminus: s.map((v) => v.minus), color: COLORS.scenario }, marker: { color: COLORS.scenario } });
  Plotly.newPlot("rul-chart", traces, layout({ yaxis: { title: { text: "days" }, rangemode: "tozero" }, xaxis: { type: "category" } }), { displayModeBar: false, responsive: true });
}

function drawCost(r) {
  const kinds = [["maintenance_cost", "Maintenance"], ["downtime_cost", "Downtime"], ["total_cost", "Total"]];
  const traces = variants(r).map(([key, name, f]) => ({
    type: "bar", name: plotlyText(name), x: kinds.map((k) => k[1]), y: kinds.map((k) => f[k[0]].mean), marker: { color: COLORS[key] },
    error_y: { type: "data", symmetric: false, array: kinds.map((k) => f[k[0]].p90 - f[k[0]].mean), arrayminus: kinds.map((k) => f[k[0]].mean - f[k[0]].p10) },
  }));
  Plotly.newPlot("cost-chart", traces, layout({ barmode: "group", yaxis: { title: { text: "cost over the horizon" } } }), { displayModeBar: false, responsive: true });
}

function drawAsset(r, index) {
  const a = r.assets[index];
  const x = dates(r);
  const traces = [];
  if (a.baseline_failure_probability) traces.push({ type: "scatter", mode: "lines", name: plotlyText(r.names.baseline), x, y: a.baseline_failure_probability, line: { color: COLORS.baseline } });
  traces.push({ type: "scatter", mode: "lines", name: plotlyText(r.names.scenario), x, y: a.failure_probability, line: { color: COLORS.scenario } });
  const shapes = [];
  if (a.recommendation.date) {
    shapes.push({ type: "line", x0: a.recommendation.date, x1: a.recommendation.date, yref: "paper", y0: 0, y1: 1, line: { color: "#2f8a57", dash: "dash" } });
  }
  Plotly.react("asset-chart", traces, layout({ yaxis: { title: { text: "P(failed by date)" }, range: [0, 1] }, xaxis: { type: "date" }, shapes }), { displayModeBar: false, responsive: true });
  // Each variant's histogram has its own bins (up to its 99th percentile); "above" counts the rest.
  const bars = [];
  const hist = (h, key, name) => {
    if (!h) return;
    const centers = h.edges.slice(0, -1).map((e, i) => (e + h.edges[i + 1]) / 2);
    const width = h.edges.map((e, i) => (i ? e - h.edges[i - 1] : 0)).slice(1);
    bars.push({ type: "bar", name: plotlyText(`${name}${h.above ? ` (${h.above} beyond)` : ""}`), x: centers, y: h.counts, width, opacity: 0.6, marker: { color: COLORS[key] } });
  };
  hist(a.baseline_rul_histogram, "baseline", r.names.baseline);
  hist(a.rul_histogram, "scenario", r.names.scenario);
  Plotly.react("asset-rul-chart", bars, layout({ barmode: "overlay", xaxis: { title: { text: "days from the run's start" } }, yaxis: { title: { text: "replications" } } }), { displayModeBar: false, responsive: true });
}

function drawResults(r) {
  drawComparison(r);
  drawRisk(r);
  drawRul(r);
  drawCost(r);
  const pick = document.getElementById("asset-pick");
  r.assets.forEach((a, i) => {
    const option = document.createElement("option");
    option.value = String(i);
    option.textContent = a.name;
    pick.append(option);
  });
  pick.addEventListener("change", () => drawAsset(r, Number(pick.value)));
  if (r.assets.length) drawAsset(r, 0);
}

if (ACTIVE.has(page.run.state)) followProgress();
if (page.results) drawResults(page.results);
