// Twin texts for live updates: the same wording as twins/twin_presenters.py renders first.
function num(value, unit) {
  const digits = Math.abs(value) >= 100 ? 0 : 1;
  return `${value.toFixed(digits)} ${unit}`.trim();
}

export function healthText(health) {
  return `${(health * 100).toFixed(0)} %`;
}

export function rulText(t) {
  if (t.rul_median === null || t.rul_median === undefined) return "not estimated";
  let text = `${num(t.rul_median, t.rul_unit)} (80%: ${num(t.rul_low, "")}–${num(t.rul_high, t.rul_unit)})`;
  if (t.rul_days_median !== null && t.rul_days_median !== undefined) text += `, about ${t.rul_days_median.toFixed(1)} days`;
  return text;
}

export function rulShort(t) {
  if (t.rul_median === null || t.rul_median === undefined) return "–";
  const days = t.rul_days_median;
  return num(t.rul_median, t.rul_unit) + (days !== null && days !== undefined ? ` ≈ ${days.toFixed(1)} d` : "");
}

export function rateText(rate) {
  if (rate === null || rate === undefined) return "not enough history yet";
  const pct = rate * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(2)} % health lost per operating hour`;
}
