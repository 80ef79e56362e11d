// Rollout page: poll the state every 2 s while the rollout is running; redraw the state, the
// reason, the node table and the action buttons (only those the current state allows).
const script = document.currentScript || document.querySelector('script[src$="rollout.js"]');
const url = script.dataset.url;
const running = new Set(["approved", "canary", "promoting", "rolled_back"]);
const csrf = document.querySelector("#rollout-actions input[name=csrfmiddlewaretoken]")?.value
  || (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  return td;
}

function actionForm(a) {
  const form = document.createElement("form");
  form.method = "post";
  form.action = a.url;
  const token = document.createElement("input");
  token.type = "hidden";
  token.name = "csrfmiddlewaretoken";
  token.value = csrf;
  const button = document.createElement("button");
  button.id = a.name;
  button.textContent = a.label;
  if (a.name === "rollback" || a.name === "cancel") button.className = "danger";
  form.append(token, button);
  return form;
}

function draw(data) {
  const state = document.getElementById("rollout-state");
  state.textContent = data.state_label;
  state.dataset.state = data.state;
  const reason = document.getElementById("rollout-reason");
  reason.textContent = data.reason || "";
  reason.hidden = !data.reason;
  const note = document.getElementById("rollout-note");
  note.textContent = data.note || "";
  note.hidden = !data.note;
  document.getElementById("rollout-actions").replaceChildren(...data.actions.map(actionForm), note);
  const body = document.querySelector("#rollout-nodes tbody");
  body.replaceChildren(...data.nodes.map((n) => {
    const tr = document.createElement("tr");
    tr.dataset.state = n.state;
    tr.append(cell(n.node), cell(n.canary ? "yes" : ""), cell(n.state_label), cell(n.p99_ms), cell(n.agreement), cell(n.detail));
    return tr;
  }));
}

async function poll() {
  try {
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    if (resp.ok) {
      const data = await resp.json();
      draw(data);
      // A rolled-back rollout still tells its switched nodes to go back: poll until they all did.
      const busy = running.has(data.state) && !(data.state === "rolled_back" && data.nodes.every((n) => n.state !== "switched" && !["sent", "downloading", "verifying", "shadow"].includes(n.state)));
      if (!busy) return;
    }
  } catch (err) {
    console.warn("rollout poll failed", err);
  }
  setTimeout(poll, 2000);
}

const initial = JSON.parse(document.getElementById("rollout-data").textContent);
if (running.has(initial.state)) setTimeout(poll, 2000);
