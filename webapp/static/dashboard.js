// The dashboard page: the report's charts, redrawn from /api/dashboard every few seconds.
"use strict";

function phaseClass(phase) { return phase === null || phase === undefined ? "pauto" : "p" + phase; }
function fixed(value, digits) { return value === null || value === undefined ? "–" : Number(value).toFixed(digits); }
function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function draw(data) {
  document.getElementById("generated").textContent = "as of " + new Date(data.generated_at).toLocaleTimeString();
  timeScatter(document.getElementById("chart-spf"), data.masklets.map((m) => ({
    t: new Date(m.submitted_at),
    y: m.seconds_per_frame,
    cls: phaseClass(m.phase),
    filled: m.person,
    title: `masklet ${m.masklet_id} · ${m.annotator} · Phase ${m.phase} ${m.work} · ${fixed(m.seconds_per_frame, 2)} s/frame`,
  })), { empty: "no masklets submitted yet" });
  const phases = data.phases.filter((p) => p.work !== "auto");
  barChart(document.getElementById("chart-edited"), phases.map((p) => ({
    label: p.label.replace("Phase ", "P"), value: p.edited_frame_pct, cls: phaseClass(p.phase), note: `${p.masklets} masklets`,
  })), { empty: "no masklets yet" });
  barChart(document.getElementById("chart-clicks"), phases.map((p) => ({
    label: p.label.replace("Phase ", "P"), value: p.clicks_per_clicked_frame, cls: phaseClass(p.phase),
    note: `${fixed(p.seconds_per_frame, 1)} s/frame`,
  })), { empty: "no clicks yet" });
  stackedBars(document.getElementById("chart-outcomes"), data.outcomes.map((o) => ({
    label: o.phase === null ? "auto" : `P${o.phase}`,
    parts: [
      { name: "satisfactory", value: o.satisfactory, cls: "satisfactory" },
      { name: "unsatisfactory", value: o.unsatisfactory, cls: "unsatisfactory" },
      { name: "rejected", value: o.rejected, cls: "rejected" },
    ],
  })), { empty: "no verdicts yet" });
  stackedBars(document.getElementById("chart-queues"), data.queues.map((q) => ({
    label: q.queue.replace("annotate_phase_", "phase "),
    parts: [
      { name: "ready", value: q.ready, cls: "ready" },
      { name: "leased", value: q.leased, cls: "leased" },
      { name: "dead", value: q.dead, cls: "dead" },
    ],
    note: "wait " + duration(q.median_wait_s),
  })), { empty: "the queues are empty" });
  const workers = data.people.filter((p) => p.masklets > 0);
  barChart(document.getElementById("chart-people"), workers.map((p) => ({
    label: (p.person ? "● " : "○ ") + p.name, value: p.masklets_per_hour, cls: p.person ? "person" : "simulated",
    note: `${fixed(p.seconds_per_frame, 1)} s/f`,
  })), { empty: "nobody has submitted a masklet yet", format: (v) => v.toFixed(1) });
  barChart(document.getElementById("chart-models"), data.models.map((m) => ({
    label: `${m.aliases.includes("champion") ? "★ " : ""}v${m.version}`, value: m.val_jf, cls: m.aliases.includes("champion") ? "champion" : "model",
    title: `${m.name}@${m.version}: val J&F ${fixed(m.val_jf, 3)} ${m.aliases.join(" ")}`,
  })), { empty: "no evaluated model versions yet", format: (v) => v.toFixed(2) });
  document.getElementById("promotions").textContent = data.promotions.length
    ? "promoted: " + data.promotions.map((p) => `${p.name}@${p.version} ${p.alias} since ${new Date(p.at).toLocaleString()}`).join("; ")
    : "no champion promoted yet";
  const body = document.querySelector("#people-table tbody");
  body.replaceChildren();
  for (const p of data.people) {
    const row = document.createElement("tr");
    for (const value of [p.name, p.person ? `person (${p.role})` : "simulated", p.masklets, fixed(p.seconds_per_frame, 2), fixed(p.masklets_per_hour, 2), p.verdicts]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
  document.getElementById("dashboard").dataset.ready = "1";
}

async function refresh() {
  try { draw(await api("GET", "/api/dashboard")); } catch (e) { toast(e.message, "error"); }
}

refresh();
setInterval(refresh, 10000);
