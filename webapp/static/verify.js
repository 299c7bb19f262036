// The verifier's page: play the masklet over the video, flag frames, give the verdict.
"use strict";

const root = document.getElementById("verifier");
const taskId = Number(root.dataset.taskId);
const status = document.getElementById("status");
const examined = new ExamineLog(taskId);
let viewer = null;
let player = null;
let lost = false;

function say(text) { status.textContent = text; }

function leaseLost(message) {
  lost = true;
  document.getElementById("lease-lost").hidden = false;
  document.getElementById("send-verdict").disabled = true;
  say(message);
}

function play() {
  const button = document.getElementById("play");
  if (player) { clearInterval(player); player = null; button.textContent = "play"; return; }
  button.textContent = "pause";
  player = setInterval(() => {
    const next = viewer.current + 1;
    if (next >= viewer.task.frame_count) { play(); return; }
    viewer.show(next);
  }, 1000 / 6);
}

function flag() {
  const input = document.getElementById("frames");
  const frames = new Set(parseFrames(input.value));
  frames.add(viewer.current);
  viewer.flagged = frames;
  viewer.markStrip();
  input.value = [...frames].sort((a, b) => a - b).join(", ");
  document.querySelector('input[name="verdict"][value="unsatisfactory"]').checked = true;
}

async function sendVerdict(event) {
  event.preventDefault();
  if (lost) return;
  await examined.flush();
  const verdict = document.querySelector('input[name="verdict"]:checked').value;
  try {
    const answer = await api("POST", `/api/tasks/${taskId}/verdict`, {
      verdict,
      note: document.getElementById("note").value,
      frames: parseFrames(document.getElementById("frames").value),
    });
    root.dataset.verdict = answer.verdict;
    say(`verdict recorded: ${answer.verdict}` + (answer.next_task_id ? ` (refine task ${answer.next_task_id})` : ""));
    document.getElementById("send-verdict").disabled = true;
    clearInterval(heartbeat);
    const back = document.createElement("a");
    back.href = "/";
    back.textContent = " back to work";
    status.appendChild(back);
  } catch (e) {
    if (e.body && e.body.kind === "LeaseLostError") leaseLost(e.message);
    else say(e.message);
  }
}

let heartbeat = null;

async function start() {
  const answer = await api("GET", `/api/tasks/${taskId}`);
  const task = answer.task;
  document.getElementById("task-title").textContent =
    `verify task ${taskId} · masklet ${task.masklet_id} · ${task.phase ? "Phase " + task.phase : "auto"} · video ${task.video_id}`;
  viewer = new FrameViewer(task, answer.frames);
  viewer.onFrame = (frame) => examined.saw(frame);
  document.getElementById("play").addEventListener("click", play);
  document.getElementById("flag").addEventListener("click", flag);
  document.getElementById("verdict").addEventListener("submit", sendVerdict);
  heartbeat = startHeartbeat(taskId, task.lease_s, leaseLost);
  root.dataset.ready = "1";
  say("ready");
}

start().catch((e) => {
  if (e.status === 409 || e.status === 403) leaseLost(e.message);
  else say(e.message);
});
