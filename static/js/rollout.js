// Rollout page: poll the state every 2 s while the rollout is running and redraw the node table.
const script = document.currentScript || document.querySelector('script[src$="rollout.js"]');
const url = script.dataset.url;
const running = new Set(["approved", "canary", "promoting", "rolled_back"]);

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function draw(data) {
  document.getElementById("rollout-state").textContent = data.state.replace("_", " ");
  document.getElementById("rollout-reason").textContent = data.reason || "";
  const body = document.querySelector("#rollout-nodes tbody");
  body.replaceChildren(...data.nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.append(cell(n.node), cell(n.canary ? "yes" : ""), cell(n.state.replace("_", " ")), cell(n.p99_ms), cell(n.agreement), cell(n.detail));
    return tr;
  }));
}

async function poll() {
  try {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    if (resp.ok) {
      const data = await resp.json();
      draw(data);
      if (!running.has(data.state)) return;
    }
  } catch (err) {
    console.warn("rollout poll failed", err);
  }
  setTimeout(poll, 2000);
}

const initial = JSON.parse(document.getElementById("rollout-data").textContent);
if (running.has(initial.state)) setTimeout(poll, 2000);
