// The live view: polls /api/live with a cursor every 2 s and prepends the new AI tweets; refreshes
// the per-minute chart and the top domains when tweets arrive (and every 15 s, as time moves on).
import { drawPerMinute } from "./chart.js";
import { tweetRow } from "./tweets.js";

const POLL_MS = 2000;
const STATS_MS = 15000;

const root = document.getElementById("live");
const feed = document.querySelector("#live-feed tbody");
const status = document.getElementById("live-status");
const chart = document.getElementById("per-minute-chart");
const total = document.getElementById("per-minute-total");
const domainList = document.getElementById("top-domains");
const maxRows = Number(root.dataset.maxRows) || 200;
let cursor = root.dataset.cursor || null;
let received = 0;

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function showStatus(text, isError) {
  status.textContent = text;
  status.classList.toggle("error", Boolean(isError));
}

async function pollLive() {
  let more = true;
  while (more) {
    const url = new URL(root.dataset.liveUrl, window.location.href);
    if (cursor) url.searchParams.set("after", cursor);
    const body = await getJson(url);
    for (const tweet of body.items) {
      if (!feed.querySelector(`tr[data-id="${CSS.escape(tweet.id)}"]`)) {
        const row = tweetRow(tweet);
        row.classList.add("new");
        feed.prepend(row);
        received += 1;
      }
    }
    while (feed.rows.length > maxRows) feed.deleteRow(feed.rows.length - 1);
    cursor = body.cursor || cursor;
    more = body.has_more;
    if (body.items.length) await refreshStats();
  }
  showStatus(`${received} new AI tweets since this page opened · checked ${new Date().toLocaleTimeString()}`);
}

async function refreshStats() {
  const [perMinute, domains] = await Promise.all([
    getJson(root.dataset.perMinuteUrl),
    getJson(root.dataset.domainsUrl),
  ]);
  drawPerMinute(chart, perMinute.points);
  total.textContent = `${perMinute.total} AI tweets in the last ${perMinute.minutes} minutes`;
  const items = domains.domains.map((d) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    const href = new URL(root.dataset.filterUrl, window.location.href);
    href.searchParams.set("domain", d.domain);
    a.href = href.pathname + href.search;
    a.textContent = d.domain;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = String(d.links);
    li.append(a, " ", count);
    return li;
  });
  domainList.replaceChildren(...items);
}

function every(ms, task) {
  const run = async () => {
    try {
      await task();
    } catch (err) {
      showStatus(`cannot update: ${err.message}`, true);
    }
    setTimeout(run, ms);
  };
  run();
}

every(POLL_MS, pollLive);
every(STATS_MS, refreshStats);
