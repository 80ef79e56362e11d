// Fleet tiles: the twin line (health and RUL) of each asset, kept live from "twin.update".
import { connectLive, readJson } from "./live.js";
import { healthText, rulShort } from "./twin_format.js";

const data = readJson("fleet-data");

function onUpdate(msg) {
  if (msg.type !== "twin.update") return;
  const el = document.querySelector(`.tile-twin[data-twin="${msg.asset}"]`);
  if (!el) return;
  el.textContent = `Health ${healthText(msg.twin.health, msg.twin)} · RUL ${rulShort(msg.twin)}`;
  el.dataset.health = String(msg.twin.health);
}

if (data && data.sites.length) {
  connectLive({ path: readJson("live-path"), subscriptions: data.sites.map((s) => ({ site: s.id })), onUpdate });
}
