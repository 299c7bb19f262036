// Small SVG charts drawn from the dashboard's data: bars, stacked bars, a time scatter.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const W = 460, H = 240, M = { left: 44, right: 12, top: 12, bottom: 46 };

function svgNode(name, attributes, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function prepare(svg) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  return { width: W - M.left - M.right, height: H - M.top - M.bottom };
}

function empty(svg, text) {
  const t = svgNode("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg);
  t.textContent = text || "no data yet";
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

function axis(svg, area, top, format) {
  for (let i = 0; i <= 4; i++) {
    const value = (top * i) / 4;
    const y = M.top + area.height - (area.height * i) / 4;
    svgNode("line", { x1: M.left, x2: M.left + area.width, y1: y, y2: y, class: "grid" }, svg);
    const label = svgNode("text", { x: M.left - 4, y: y + 3, "text-anchor": "end", class: "tick" }, svg);
    label.textContent = format ? format(value) : String(Math.round(value * 100) / 100);
  }
}

// items: [{label, value, cls, title}]
function barChart(svg, items, options) {
  const area = prepare(svg);
  const shown = items.filter((item) => item.value !== null && item.value !== undefined && isFinite(item.value));
  if (!shown.length) return empty(svg, options && options.empty);
  const top = niceMax(Math.max(...shown.map((i) => i.value)));
  axis(svg, area, top, options && options.format);
  const slot = area.width / items.length;
  items.forEach((item, i) => {
    const x = M.left + i * slot + slot * 0.15;
    const value = isFinite(item.value) && item.value !== null ? item.value : 0;
    const height = (area.height * value) / top;
    const bar = svgNode("rect", { x, y: M.top + area.height - height, width: slot * 0.7, height, class: "bar " + (item.cls || "") }, svg);
    svgNode("title", {}, bar).textContent = item.title || `${item.label}: ${value}`;
    const label = svgNode("text", { x: x + slot * 0.35, y: H - M.bottom + 14, "text-anchor": "middle", class: "label" }, svg);
    label.textContent = item.label;
    if (item.note) {
      const note = svgNode("text", { x: x + slot * 0.35, y: H - M.bottom + 28, "text-anchor": "middle", class: "note" }, svg);
      note.textContent = item.note;
    }
  });
}

// items: [{label, parts: [{name, value, cls}], note}]
function stackedBars(svg, items, options) {
  const area = prepare(svg);
  const totals = items.map((item) => item.parts.reduce((sum, p) => sum + (p.value || 0), 0));
  if (!items.length || Math.max(...totals) <= 0) return empty(svg, options && options.empty);
  const top = niceMax(Math.max(...totals));
  axis(svg, area, top, (v) => (top >= 4 ? String(Math.round(v)) : String(Math.round(v * 100) / 100)));
  const slot = area.width / items.length;
  items.forEach((item, i) => {
    const x = M.left + i * slot + slot * 0.15;
    let base = M.top + area.height;
    for (const part of item.parts) {
      const height = (area.height * (part.value || 0)) / top;
      if (height <= 0) continue;
      base -= height;
      const bar = svgNode("rect", { x, y: base, width: slot * 0.7, height, class: "bar " + part.cls }, svg);
      svgNode("title", {}, bar).textContent = `${item.label} ${part.name}: ${part.value}`;
    }
    const label = svgNode("text", { x: x + slot * 0.35, y: H - M.bottom + 14, "text-anchor": "middle", class: "label" }, svg);
    label.textContent = item.label;
    if (item.note) {
      const note = svgNode("text", { x: x + slot * 0.35, y: H - M.bottom + 28, "text-anchor": "middle", class: "note" }, svg);
      note.textContent = item.note;
    }
  });
}

// points: [{t: Date, y, cls, filled, title}]
function timeScatter(svg, points, options) {
  const area = prepare(svg);
  const shown = points.filter((p) => p.y !== null && isFinite(p.y));
  if (!shown.length) return empty(svg, options && options.empty);
  const top = niceMax(Math.max(...shown.map((p) => p.y)));
  axis(svg, area, top);
  const times = shown.map((p) => p.t.getTime());
  let first = Math.min(...times), last = Math.max(...times);
  if (last === first) { first -= 60000; last += 60000; }
  for (const p of shown) {
    const x = M.left + ((p.t.getTime() - first) / (last - first)) * area.width;
    const y = M.top + area.height - (area.height * p.y) / top;
    const dot = svgNode("circle", { cx: x, cy: y, r: 4, class: `point ${p.cls} ${p.filled ? "filled" : "hollow"}` }, svg);
    svgNode("title", {}, dot).textContent = p.title;
  }
  const from = svgNode("text", { x: M.left, y: H - M.bottom + 14, class: "label" }, svg);
  from.textContent = new Date(first).toLocaleString();
  const to = svgNode("text", { x: M.left + area.width, y: H - M.bottom + 14, "text-anchor": "end", class: "label" }, svg);
  to.textContent = new Date(last).toLocaleString();
  const legend = [...new Set(shown.map((p) => p.cls))].sort();
  legend.forEach((cls, i) => {
    svgNode("circle", { cx: M.left + 10 + i * 80, cy: H - 10, r: 4, class: `legend-dot ${cls}` }, svg);
    const text = svgNode("text", { x: M.left + 18 + i * 80, y: H - 6, class: "label" }, svg);
    text.textContent = cls.replace("p", "Phase ").replace("Phase auto", "auto");
  });
}
