"use strict";
const QUEUE_NAMES = {
  annotate_phase_1: "Phase 1 · SAM per frame",
  annotate_phase_2: "Phase 2 · SAM + SAM 2 Mask",
  annotate_phase_3: "Phase 3 · SAM 2",
  refine: "Refinement",
  verify: "Verification",
};

async function claim(queue) {
  const message = document.getElementById("claim-message");
  try {
    const answer = await api("POST", "/api/tasks/claim", { queue });
    if (!answer.task) { message.textContent = answer.message; return; }
    window.location.assign(answer.page);
  } catch (e) {
    message.textContent = e.message;
  }
}

function showQueues() {
  const box = document.getElementById("queues");
  for (const queue of box.dataset.queues.split(" ").filter(Boolean)) {
    const button = document.createElement("button");
    button.textContent = "claim: " + (QUEUE_NAMES[queue] || queue);
    button.dataset.queue = queue;
    button.className = "claim";
    button.addEventListener("click", () => claim(queue));
    box.appendChild(button);
  }
}

async function showMine() {
  const list = document.getElementById("mine");
  const answer = await api("GET", "/api/tasks/mine");
  list.replaceChildren();
  if (!answer.tasks.length) { list.textContent = "none"; return; }
  for (const task of answer.tasks) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = task.page;
    link.textContent = `task ${task.id} · ${QUEUE_NAMES[task.queue] || task.queue} · video ${task.video_id}`;
    item.appendChild(link);
    list.appendChild(item);
  }
}

showQueues();
showMine().catch((e) => toast(e.message, "error"));
