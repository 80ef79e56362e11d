// Asset page, digital twin panel: health and RUL (with its 80% band) over time in Plotly,
// the figures kept live from "twin.update" messages of the asset's group.
import { connectLive, formatTime, readJson } from "./live.js";
import { healthText, rateText, rulText } from "./twin_format.js";

const page = readJson("asset-data");
const twin = readJson("twin-data");
const chart = document.getElementById("twin-chart");
const history = twin ? twin.history.slice() : []; // [t, health, median, low, high]
let unit = twin ? twin.figures.rul_unit : "";
const COLORS = { health: "#2e8b57", rul: "#3d6fd1", band: "rgba(61,111,209,0.18)", grid: "#eceff3", text: "#5d6678" };

function draw() {
  if (!history.length || !window.Plotly) return;
  chart.hidden = false;
  const x = history.map((p) => new Date(p[0] * 1000));
  const traces = [
    { x, y: history.map((p) => p[4]), type: "scatter", mode: "lines", line: { width: 0 }, yaxis: "y2", hoverinfo: "skip", showlegend: false },
    { x, y: history.map((p) => p[3]), type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty", fillcolor: COLORS.band, yaxis: "y2", name: "80% interval", hoverinfo: "skip" },
    { x, y: history.map((p) => p[2]), type: "scatter", mode: "lines+markers", marker: { size: 3 }, line: { color: COLORS.rul, width: 1.6 }, yaxis: "y2", name: `RUL [${unit}]` },
    { x, y: history.map((p) => p[1]), type: "scatter", mode: "lines", line: { color: COLORS.health, width: 1.6, dash: "dot" }, name: "health" },
  ];
  const layout = {
    height: 220, margin: { l: 40, r: 48, t: 6, b: 28 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, sans-serif", size: 11, color: COLORS.text },
    legend: { orientation: "h", y: -0.25 },
    xaxis: { type: "date", gridcolor: COLORS.grid },
    yaxis: { title: { text: "health" }, range: [0, 1.05], gridcolor: COLORS.grid },
    yaxis2: { title: { text: unit }, overlaying: "y", side: "right", rangemode: "tozero", showgrid: false },
  };
  window.Plotly.react(chart, traces, layout, { displayModeBar: false, responsive: true });
  chart.dataset.points = String(history.length);
}

function show(t) {
  const health = document.getElementById("twin-health");
  health.textContent = healthText(t.health, t);
  health.dataset.state = "computed";
  const rul = document.getElementById("twin-rul");
  rul.textContent = rulText(t);
  rul.dataset.state = t.rul_median === null ? "not-computed" : "computed";
  document.getElementById("twin-rate").textContent = rateText(t);
  const computed = document.getElementById("twin-computed");
  computed.textContent = formatTime(t.computed_at);
  computed.dataset.ts = String(t.computed_at);
  document.getElementById("twin-model-version").textContent = t.model_version;
  const early = document.getElementById("twin-early");
  early.hidden = !(t.rows_used !== null && t.window !== null && t.rows_used < t.window);
  document.getElementById("twin-rows").textContent = String(t.rows_used);
}

function onUpdate(msg) {
  if (msg.type !== "twin.update" || msg.asset !== page.asset) return;
  const t = msg.twin;
  unit = t.rul_unit;
  show(t);
  if (!twin) document.getElementById("twin-model").hidden = false;
  const last = history.length ? history[history.length - 1][0] : 0;
  if (t.computed_at > last) history.push([t.computed_at, t.health, t.rul_median, t.rul_low, t.rul_high]);
  requestAnimationFrame(draw);
}

function start() {
  if (twin) show(twin.figures);
  draw();
  connectLive({ path: readJson("live-path"), subscriptions: [{ asset: page.asset }], onUpdate });
}

// Plotly is loaded with `defer`: module scripts run after deferred ones, but be safe.
if (window.Plotly || document.readyState !== "loading") start();
else window.addEventListener("DOMContentLoaded", start);
