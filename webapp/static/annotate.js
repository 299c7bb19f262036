// The annotator's page: the tools of the task's phase on a frame viewer, propagation streamed, lease kept.
"use strict";

const root = document.getElementById("annotator");
const taskId = Number(root.dataset.taskId);
const status = document.getElementById("status");
let viewer = null;
let task = null;
let tool = "positive";
let lost = false;
let busy = false;
let stroke = null;
let propagation = null;
const examined = new ExamineLog(taskId);

function say(text) { status.textContent = text; }

function leaseLost(message) {
  lost = true;
  document.getElementById("lease-lost").hidden = false;
  document.getElementById("submit").disabled = true;
  say(message);
}

async function act(path, body) {
  if (lost) { say("the lease is lost: nothing more can be recorded"); return null; }
  if (busy) { say("busy: wait for the current action"); return null; }
  busy = true;
  try {
    await examined.flush();
    const answer = await api("POST", `/api/tasks/${taskId}/${path}`, body);
    if (answer.frames) viewer.update(answer.frames);
    updateUndo(answer.undo);
    return answer;
  } catch (e) {
    if (e.status === 409 && e.body.kind === "LeaseLostError") leaseLost(e.message);
    else if (e.status === 403 && /not leased to you/.test(e.message)) leaseLost(e.message);
    else say(e.message);
    return null;
  } finally {
    busy = false;
  }
}

function updateUndo(depth) {
  if (typeof depth === "number") document.getElementById("undo").disabled = depth === 0;
}

function chooseTool(name) {
  tool = name;
  for (const button of document.querySelectorAll(".tool")) button.classList.toggle("active", button.dataset.tool === name);
}

function setupTools() {
  const tools = new Set(task.tools);
  for (const button of document.querySelectorAll(".tool")) {
    const needs = button.dataset.tool === "positive" || button.dataset.tool === "negative" ? "click" : button.dataset.tool;
    button.hidden = !tools.has(needs);
    button.addEventListener("click", () => chooseTool(button.dataset.tool));
  }
  document.getElementById("clear").hidden = !tools.has("clear");
  document.getElementById("accept").hidden = !tools.has("accept");
  document.getElementById("propagate").hidden = !tools.has("propagate");
  chooseTool(tools.has("click") ? "positive" : "brush");
}

function onPointerDown(event) {
  if (event.button !== 0) return;
  const point = viewer.framePoint(event);
  if (tool === "positive" || tool === "negative") {
    act("click", { frame: viewer.current, x: point[0], y: point[1], positive: tool === "positive" });
    return;
  }
  if (tool === "brush" || tool === "eraser") {
    stroke = { points: [point], eraser: tool === "eraser" };
    viewer.canvas.setPointerCapture(event.pointerId);
  }
}

function onPointerMove(event) {
  if (!stroke) return;
  const point = viewer.framePoint(event);
  const last = stroke.points[stroke.points.length - 1];
  if (Math.hypot(point[0] - last[0], point[1] - last[1]) >= 0.75 && stroke.points.length < 4000) {
    stroke.points.push(point);
    viewer.draw();
  }
}

function onPointerUp() {
  if (!stroke) return;
  const done = stroke;
  stroke = null;
  viewer.draw();
  act("stroke", { frame: viewer.current, points: done.points, radius: radius(), eraser: done.eraser });
}

function radius() { return Number(document.getElementById("radius").value); }

function drawExtras(ctx, z) {
  if (stroke) {
    ctx.strokeStyle = stroke.eraser ? "rgba(0,200,255,0.8)" : "rgba(255,255,0,0.8)";
    ctx.lineWidth = 2 * radius() * z;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * z, y * z) : ctx.moveTo(x * z, y * z)));
    ctx.stroke();
  }
  const hint = task.hint;
  if (hint && hint.frame === viewer.current && viewer.frames[viewer.current].status === "todo") {
    ctx.strokeStyle = "#0f0";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(hint.x * z, hint.y * z, 6 + 2 * z, 0, 2 * Math.PI);
    ctx.stroke();
  }
}

async function propagate() {
  if (lost || busy) return;
  busy = true;
  await examined.flush();
  examined.paused = true;
  const start = viewer.current;
  document.getElementById("cancel").hidden = false;
  document.getElementById("propagate").disabled = true;
  say(`propagating from frame ${start}…`);
  const controller = new AbortController();
  propagation = controller;
  let received = 0;
  try {
    const response = await fetch(`/api/tasks/${taskId}/propagate`, {
      method: "POST",
      credentials: "same-origin",
      signal: controller.signal,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify({ frame: start }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiError(response.status, body);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        if (line.error) throw new ApiError(409, line);
        if (line.done) {
          updateUndo(line.undo);
          say(`${line.cancelled ? "cancelled after" : "propagated"} ${line.frames} frame(s)`);
          root.dataset.propagated = String(Number(root.dataset.propagated || 0) + 1);
        } else {
          received += 1;
          viewer.frames[line.frame] = line;
          viewer.markStrip();
          if (line.frame === viewer.current) viewer.draw();
          say(`propagating… frame ${line.frame}`);
        }
      }
    }
  } catch (e) {
    if (e.body && e.body.kind === "LeaseLostError") leaseLost(e.message);
    else say(e.name === "AbortError" ? `cancelled after ${received} frame(s)` : e.message);
  } finally {
    propagation = null;
    busy = false;
    examined.paused = false;
    document.getElementById("cancel").hidden = true;
    document.getElementById("propagate").disabled = false;
    viewer.show(viewer.current);
  }
}

async function cancelPropagation() {
  try { await api("POST", `/api/tasks/${taskId}/propagate/cancel`); } catch (e) { propagation?.abort(); }
}

async function undo() {
  const answer = await act("undo");
  if (answer) say(`undid ${answer.undone}`);
}

async function submit(allowUntouched) {
  if (lost) return;
  await examined.flush();
  try {
    const answer = await api("POST", `/api/tasks/${taskId}/submit`, { allow_untouched: allowUntouched });
    root.dataset.submitted = String(answer.masklet_id);
    say(`submitted: masklet ${answer.masklet_id} is waiting for verification`);
    document.getElementById("submit").disabled = true;
    clearInterval(heartbeat);
    const next = document.createElement("a");
    next.href = "/";
    next.textContent = " back to work";
    status.appendChild(next);
  } catch (e) {
    if (e.status === 409 && e.body.untouched) {
      say(`${e.message} `);
      const again = document.createElement("button");
      again.id = "submit-anyway";
      again.textContent = "submit anyway";
      again.addEventListener("click", () => submit(true));
      status.appendChild(again);
    } else if (e.body && e.body.kind === "LeaseLostError") {
      leaseLost(e.message);
    } else {
      say(e.message);
    }
  }
}

let heartbeat = null;

async function start() {
  const answer = await api("GET", `/api/tasks/${taskId}`);
  task = answer.task;
  const phase = task.queue === "refine" ? "refinement (Phase 3 tools)" : `Phase ${task.phase}`;
  document.getElementById("task-title").textContent = `task ${taskId} · ${phase} · video ${task.video_id} · object ${task.object_id}`;
  if (task.queue === "refine") {
    const note = document.getElementById("refine-note");
    note.textContent = `Verifier: ${task.reason || "(no note)"}` + (task.flagged_frames.length ? ` — frames ${task.flagged_frames.join(", ")}` : "");
    note.hidden = false;
  }
  viewer = new FrameViewer(task, answer.frames);
  viewer.overlay = drawExtras;
  viewer.onFrame = (frame) => { if (!examined.paused) examined.saw(frame); };
  if (task.hint) viewer.show(task.hint.frame);
  setupTools();
  updateUndo(answer.undo);
  viewer.canvas.addEventListener("pointerdown", onPointerDown);
  viewer.canvas.addEventListener("pointermove", onPointerMove);
  viewer.canvas.addEventListener("pointerup", onPointerUp);
  viewer.canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  document.getElementById("clear").addEventListener("click", () => act("clear", { frame: viewer.current }));
  document.getElementById("accept").addEventListener("click", () => act("accept", { frame: viewer.current }));
  document.getElementById("propagate").addEventListener("click", propagate);
  document.getElementById("cancel").addEventListener("click", cancelPropagation);
  document.getElementById("undo").addEventListener("click", undo);
  document.getElementById("submit").addEventListener("click", () => submit(false));
  document.addEventListener("keydown", (e) => { if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); } });
  heartbeat = startHeartbeat(taskId, task.lease_s, leaseLost);
  root.dataset.ready = "1";
  say("ready");
}

start().catch((e) => {
  if (e.status === 409 || e.status === 403) leaseLost(e.message);
  else say(e.message);
});
