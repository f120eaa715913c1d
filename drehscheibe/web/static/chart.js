// The history chart: one attribute's recorded values over time, as an SVG line with points.

const SVG = "http://www.w3.org/2000/svg";
const MARGIN = { top: 24, right: 18, bottom: 30, left: 58 };

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/** About `count` round tick values covering [min, max]. */
export function niceTicks(min, max, count = 5) {
  if (min === max) {
    const pad = Math.abs(min) * 0.1 || 1;
    return niceTicks(min - pad, max + pad, count);
  }
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  const start = Math.floor(min / step) * step;
  const ticks = [];
  for (let i = 0; i <= 50; i++) {
    const value = Number((start + i * step).toFixed(10));
    ticks.push(value);
    if (value >= max) break;
  }
  return ticks;
}

function label(value) {
  return Math.abs(value) >= 1000 ? value.toFixed(0) : String(Number(value.toPrecision(4)));
}

function timeLabel(ms, span) {
  const date = new Date(ms);
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return span > 20 * 3600 * 1000
    ? `${date.toLocaleDateString([], { day: "2-digit", month: "2-digit" })} ${time}`
    : time;
}

/**
 * Draw `points` ([{t: ISO time, v: number}], oldest first) into `svg`.
 * `unit` labels the values; an empty list draws a note instead.
 */
export function drawChart(svg, points, { unit = "", name = "" } = {}) {
  const width = Math.max(svg.clientWidth, 320);
  const height = Math.max(svg.clientHeight, 180);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const usable = points.map((p) => ({ t: Date.parse(p.t), v: p.v })).filter((p) => !Number.isNaN(p.t));
  if (usable.length === 0) {
    const note = svgElement("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "chart-empty" });
    note.textContent = "No recorded values yet.";
    svg.appendChild(note);
    return;
  }
  const innerW = width - MARGIN.left - MARGIN.right;
  const innerH = height - MARGIN.top - MARGIN.bottom;
  let t0 = Math.min(...usable.map((p) => p.t));
  let t1 = Math.max(...usable.map((p) => p.t));
  if (t0 === t1) {
    t0 -= 30 * 60 * 1000;
    t1 += 30 * 60 * 1000;
  }
  const yTicks = niceTicks(Math.min(...usable.map((p) => p.v)), Math.max(...usable.map((p) => p.v)));
  const v0 = yTicks[0];
  const v1 = yTicks.at(-1);
  const x = (t) => MARGIN.left + ((t - t0) / (t1 - t0)) * innerW;
  const y = (v) => MARGIN.top + (1 - (v - v0) / (v1 - v0)) * innerH;

  for (const tick of yTicks) {
    svg.appendChild(svgElement("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick), class: "tick" }));
    const text = svgElement("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick-label" });
    text.textContent = label(tick);
    svg.appendChild(text);
  }
  const xCount = Math.max(2, Math.min(6, Math.floor(innerW / 110)));
  for (let i = 0; i <= xCount; i++) {
    const t = t0 + ((t1 - t0) * i) / xCount;
    const text = svgElement("text", {
      x: x(t),
      y: height - MARGIN.bottom + 18,
      "text-anchor": i === 0 ? "start" : i === xCount ? "end" : "middle",
      class: "tick-label",
    });
    text.textContent = timeLabel(t, t1 - t0);
    svg.appendChild(text);
  }
  svg.appendChild(svgElement("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: height - MARGIN.bottom, class: "axis" }));
  svg.appendChild(svgElement("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: height - MARGIN.bottom, y2: height - MARGIN.bottom, class: "axis" }));
  if (unit) {
    const unitText = svgElement("text", { x: 4, y: 12, class: "tick-label" });
    unitText.textContent = unit;
    svg.appendChild(unitText);
  }

  const path = usable.map((p, i) => `${i === 0 ? "M" : "L"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  svg.appendChild(svgElement("path", { d: path, class: "series" }));
  for (const p of usable) {
    const dot = svgElement("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3.5, class: "point" });
    const title = svgElement("title");
    title.textContent = `${name} ${label(p.v)}${unit ? ` ${unit}` : ""} at ${new Date(p.t).toLocaleString()}`.trim();
    dot.appendChild(title);
    svg.appendChild(dot);
  }
}
