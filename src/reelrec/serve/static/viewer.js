// reelrec feed viewer: load a user's feed, post feedback events, reload.
// Plain JS, no build step. Every value is written with textContent (no HTML injection).
"use strict";

const $ = (id) => document.getElementById(id);
const statusLine = $("status");

function setStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function readInt(id) {
  const value = Number($(id).value);
  return Number.isInteger(value) ? value : null;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.message || JSON.stringify(body);
  } catch (e) {
    return response.statusText;
  }
}

// What each button posts: one canonical event (see POST /v1/events).
function feedbackEvent(kind, userId, item) {
  const duration = item.duration_ms > 0 ? item.duration_ms : 15000;
  const event = {
    user_id: userId, item_id: item.item_id, timestamp_ms: Date.now(),
    duration_ms: item.duration_ms, is_click: 1,
  };
  if (kind === "watched") { event.watch_ms = duration; event.long_view = 1; }
  if (kind === "liked") { event.watch_ms = duration; event.long_view = 1; event.is_like = 1; }
  if (kind === "skipped") { event.watch_ms = Math.min(1000, duration); }
  return event;
}

async function sendFeedback(kind, userId, item) {
  setStatus(`posting ${kind} for item ${item.item_id}...`);
  const response = await fetch("/v1/events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ events: [feedbackEvent(kind, userId, item)] }),
  });
  if (!response.ok) {
    setStatus(`event refused: ${await errorMessage(response)}`, true);
    return;
  }
  const result = await response.json();
  if (result.accepted !== 1) {
    setStatus(`event refused: ${result.rejected.map((r) => r.message).join("; ")}`, true);
    return;
  }
  await loadFeed(`${kind}: item ${item.item_id} (offset ${result.last_offset}). `);
}

function renderCard(template, userId, item) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.itemId = String(item.item_id);
  card.querySelector(".item-id").textContent = String(item.item_id);
  card.querySelector(".author").textContent = String(item.author_id);
  card.querySelector(".tags").textContent = item.tags.length ? item.tags.join(", ") : "none";
  card.querySelector(".duration").textContent = `${(item.duration_ms / 1000).toFixed(1)} s`;
  card.querySelector(".score").textContent = item.score.toFixed(4);
  card.querySelector(".retriever").textContent = item.retriever;
  for (const kind of ["watched", "liked", "skipped"]) {
    card.querySelector(`.${kind}`).addEventListener("click", () => sendFeedback(kind, userId, item));
  }
  return card;
}

async function loadFeed(prefix = "") {
  const userId = readInt("user-id");
  const n = readInt("n");
  if (userId === null || userId < 0 || n === null || n < 1 || n > 200) {
    setStatus("user id must be an integer >= 0 and items an integer in 1..200", true);
    return;
  }
  setStatus(`${prefix}loading feed for user ${userId}...`);
  const response = await fetch(`/v1/feed?user_id=${userId}&n=${n}`);
  if (!response.ok) {
    setStatus(`feed failed: ${await errorMessage(response)}`, true);
    return;
  }
  const feed = await response.json();
  const list = $("feed");
  const template = $("card-template");
  list.replaceChildren(...feed.items.map((item) => renderCard(template, userId, item)));
  list.dataset.userId = String(userId);
  const cold = feed.cold_start ? ", cold start" : "";
  setStatus(
    `${prefix}user ${userId}: ${feed.count} items, model v${feed.model_version}${cold}, ` +
    `${feed.timing.total_ms.toFixed(1)} ms server time`
  );
}

$("controls").addEventListener("submit", (event) => {
  event.preventDefault();
  loadFeed();
});
