// The tag page: label with the keyboard. a = AI, x = not AI, space = skip, backspace = undo,
// j/k (or the arrow keys) = next/previous tweet. Decisions are sent one after another, in the
// order they were typed; the focus moves on at once, so typing never waits for the server.
import { markLabel, tweetRow } from "./rows.js";

const root = document.getElementById("tagger");
const tbody = document.querySelector("#rows tbody");
const statusLine = document.getElementById("tag-status");
const empty = document.getElementById("empty");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const table = root.dataset.table;
const STATUS_MS = 5000;

let next = root.dataset.next || null;
let modelVersion = root.dataset.modelVersion || "";
let current = -1;
let pending = Promise.resolve();
let inFlight = 0;
let loading = null;
const undoStack = [];  // {kind: "label" | "skip", id, historyId}

function rows() {
  return Array.from(tbody.rows);
}

function showStatus(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function call(method, url, body) {
  const options = { method, headers: { Accept: "application/json" }, cache: "no-store" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.headers["X-CSRF-Token"] = csrf;
    options.body = JSON.stringify(body);
  }
  const response = await fetch(url, options);
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  return answer;
}

// Requests run one at a time in typing order: an undo needs the answer to the label it undoes.
function enqueue(work) {
  inFlight += 1;
  root.dataset.pending = String(inFlight);
  pending = pending.then(work).catch((err) => showStatus(err.message, true)).finally(() => {
    inFlight -= 1;
    root.dataset.pending = String(inFlight);
  });
  return pending;
}

function focus(index) {
  const all = rows();
  if (!all.length) {
    current = -1;
    return;
  }
  current = Math.max(0, Math.min(index, all.length - 1));
  all.forEach((row, i) => row.classList.toggle("current", i === current));
  all[current].scrollIntoView({ block: "nearest" });
}

function rowById(id) {
  return tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
}

function showProgress(p) {
  if (!p) return;
  document.getElementById("progress-labelled").textContent = p.labelled;
  document.getElementById("progress-total").textContent = p.total;
  document.getElementById("progress-ai").textContent = p.ai;
  document.getElementById("progress-not-ai").textContent = p.not_ai;
  document.getElementById("progress-disagree").textContent = p.disagree_with_snorkel;
  const bar = document.getElementById("progress-bar");
  bar.max = p.total || 1;
  bar.value = p.labelled;
}

async function loadMore() {
  if (!next) return false;
  if (!loading) {
    loading = (async () => {
      const url = new URL(root.dataset.rowsUrl, window.location.href);
      url.searchParams.set("table", table);
      url.searchParams.set("filter", root.dataset.filter);
      url.searchParams.set("strategy", root.dataset.strategy);
      if (root.dataset.search) url.searchParams.set("q", root.dataset.search);
      url.searchParams.set("after", next);
      const page = await call("GET", url);
      for (const tweet of page.items) {
        if (!rowById(tweet.id)) tbody.append(tweetRow(tweet));
      }
      next = page.next;
      const link = document.getElementById("next-page");
      if (link) link.hidden = true;
      return page.items.length > 0;
    })().finally(() => {
      loading = null;
    });
  }
  return loading;
}

async function advance() {
  if (current < rows().length - 1) {
    focus(current + 1);
    return;
  }
  // past the last row while the next tweets load: keys act on nothing rather than twice on one tweet
  const first = rows().length;
  rows().forEach((row) => row.classList.remove("current"));
  current = first;
  let more = false;
  try {
    more = await loadMore();
  } catch (err) {
    showStatus(err.message, true);
  }
  if (more) {
    focus(first);
  } else {
    empty.hidden = false;
    showStatus("That was the last tweet here.");
  }
}

function decide(label) {
  const row = rows()[current];
  if (!row) return;
  const id = row.dataset.id;
  row.classList.add("saving");
  enqueue(async () => {
    const answer = await call("POST", root.dataset.labelUrl, { table, id, label });
    undoStack.push({ kind: "label", id, historyId: answer.history_id });
    markLabel(row, answer.tweet);
    row.classList.remove("saving");
    showProgress(answer.progress);
    showStatus(`Saved: ${label === 1 ? "AI" : "not AI"} for tweet ${id}.`);
  });
  advance();
}

function skip() {
  const row = rows()[current];
  if (!row) return;
  const id = row.dataset.id;
  enqueue(async () => {
    const answer = await call("POST", root.dataset.skipUrl, { table, id });
    undoStack.push({ kind: "skip", id, historyId: answer.history_id });
    showStatus(`Skipped tweet ${id}.`);
  });
  advance();
}

function undo() {
  enqueue(async () => {
    const last = undoStack.pop();
    if (!last) {
      showStatus("Nothing to undo.");
      return;
    }
    const row = rowById(last.id);
    if (last.kind === "label") {
      const answer = await call("POST", root.dataset.undoUrl, { table, id: last.id, history_id: last.historyId });
      if (row) markLabel(row, answer.tweet);
      showProgress(answer.progress);
      showStatus(`Undone: tweet ${last.id} is ${answer.restored === null ? "unlabelled" : answer.restored === 1 ? "AI" : "not AI"} again.`);
    } else {
      showStatus(`Back to skipped tweet ${last.id}.`);
    }
    if (row) {
      empty.hidden = true;
      focus(rows().indexOf(row));
    }
  });
}

function describeRetrain(retrain) {
  if (!retrain.enabled) return `off: ${retrain.reason}`;
  let text = `${retrain.labels_since_retrain} / ${retrain.every} new labels`;
  if (retrain.running) text += ", retraining now";
  if (retrain.last_error) text += ` (last retrain failed: ${retrain.last_error})`;
  else if (retrain.last_version !== null) text += ` (last: model version ${retrain.last_version})`;
  return text;
}

function describeRescore(rescore) {
  if (rescore.running) return "running";
  if (rescore.error) return `failed: ${rescore.error}`;
  if (rescore.version) return `done with model version ${rescore.version}`;
  return "idle";
}

async function refreshStatus() {
  try {
    const url = new URL(root.dataset.statusUrl, window.location.href);
    url.searchParams.set("table", table);
    url.searchParams.set("strategy", root.dataset.strategy);
    const status = await call("GET", url);
    showProgress(status.progress);
    document.getElementById("retrain-status").textContent = describeRetrain(status.retrain);
    document.getElementById("rescore-status").textContent = describeRescore(status.rescore);
    const version = status.model_version === null ? "" : String(status.model_version);
    document.getElementById("model-version").textContent = version || "none";
    if (version !== modelVersion && root.dataset.filter === "unlabelled") {
      document.getElementById("reorder-notice").hidden = false;
    }
  } catch (err) {
    showStatus(`Status: ${err.message}`, true);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement ||
      target instanceof HTMLTextAreaElement || target instanceof HTMLButtonElement) return;
  const actions = {
    a: () => decide(1),
    x: () => decide(0),
    " ": skip,
    Backspace: undo,
    j: () => focus(current + 1),
    ArrowDown: () => focus(current + 1),
    k: () => focus(current - 1),
    ArrowUp: () => focus(current - 1),
  };
  const action = actions[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

tbody.addEventListener("click", (event) => {
  const row = event.target.closest("tr.tweet");
  if (row) focus(rows().indexOf(row));
});

document.getElementById("reorder").addEventListener("click", () => window.location.reload());
const rescoreButton = document.getElementById("rescore");
if (rescoreButton) {
  rescoreButton.addEventListener("click", () => {
    enqueue(async () => {
      const answer = await call("POST", root.dataset.rescoreUrl, { table });
      showStatus(answer.started ? "Rescoring the queue with the served model…" : "A rescore is already running.");
      await refreshStatus();
    });
  });
}

focus(0);
root.dataset.ready = "true";
setInterval(refreshStatus, STATUS_MS);
