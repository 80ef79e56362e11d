// Twin texts for live updates: the same wording as twins/twin_presenters.py renders first.
function num(value, unit = "") {
  const text = Math.abs(value) >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(1);
  return `${text} ${unit}`.trim();
}

function days(d) {
  return d >= 100 ? Math.round(d).toLocaleString("en-US") : d.toFixed(1);
}

// twins/twin_const.py AT_CAP_SHARE
const AT_CAP_SHARE = 0.97;

export function atCap(t) {
  return t.rul_cap !== null && t.rul_cap !== undefined && t.rul_median !== null && t.rul_median !== undefined
    && t.rul_median >= t.rul_cap * AT_CAP_SHARE;
}

export function healthText(health, t = null) {
  if (t && atCap(t)) return "100 %"; // no wear visible, as the RUL text says
  return `${(health * 100).toFixed(0)} %`;
}

export function rulText(t) {
  if (t.rul_median === null || t.rul_median === undefined) return "not estimated";
  const hasDays = t.rul_days_median !== null && t.rul_days_median !== undefined;
  if (atCap(t)) {
    return `more than ${num(t.rul_cap, t.rul_unit)} (no wear visible yet: the model's horizon)` + (hasDays ? `, over ${days(t.rul_days_median)} days` : "");
  }
  const text = `${num(t.rul_median, t.rul_unit)} (80%: ${num(t.rul_low)}–${num(t.rul_high, t.rul_unit)})`;
  return text + (hasDays ? `, about ${days(t.rul_days_median)} days` : "");
}

export function rulShort(t) {
  if (t.rul_median === null || t.rul_median === undefined) return "–";
  if (atCap(t)) return `> ${num(t.rul_cap, t.rul_unit)}`;
  const d = t.rul_days_median;
  return num(t.rul_median, t.rul_unit) + (d !== null && d !== undefined ? ` ≈ ${days(d)} d` : "");
}

function sig(value, digits) {
  return Number(value.toPrecision(digits)).toString();
}

export function rateText(t) {
  if (atCap(t)) return "none visible yet";
  const rate = t.degradation_rate;
  if (rate === null || rate === undefined) return "–";
  return `${sig(rate * 100, 3)} % of health per operating hour (${sig(rate * 2400, 2)} % per 24 h)`;
}
