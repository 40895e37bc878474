// One tweet as a table row, the same as templates/tagger/_macros.html renders it. Tweet text is
// untrusted: every value goes in with textContent, never as HTML.
const LABEL_NAMES = { 1: "AI", 0: "not AI" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function badge(label) {
  return el("span", `badge label-${label}`, LABEL_NAMES[label] ?? String(label));
}

export function fillGold(cell, tweet) {
  cell.replaceChildren();
  if (tweet.label !== null && tweet.label !== undefined) {
    cell.append(badge(tweet.label), " ", el("span", "by", tweet.labelled_by));
  }
}

export function markLabel(row, tweet) {
  row.classList.remove("labelled", "label-0", "label-1");
  if (tweet.label !== null && tweet.label !== undefined) row.classList.add("labelled", `label-${tweet.label}`);
  fillGold(row.querySelector("td.gold"), tweet);
}

export function tweetRow(tweet) {
  const row = el("tr", "tweet");
  row.dataset.id = tweet.id;
  row.append(el("td", "text", tweet.text));

  const meta = el("td", "meta");
  meta.append(el("span", "user", `@${tweet.user || "?"}`), " ",
              el("span", "time", (tweet.created_at || "").replace("T", " ")));
  row.append(meta);

  const snorkel = el("td", "snorkel");
  if (tweet.slabel === 0 || tweet.slabel === 1) snorkel.append(badge(tweet.slabel));
  else snorkel.append(el("span", "muted", "no vote"));
  if (tweet.slabel_prob !== null) snorkel.append(" ", el("span", "prob", tweet.slabel_prob.toFixed(2)));
  row.append(snorkel);

  const model = el("td", "model");
  model.append(tweet.ai_prob !== null ? el("span", "prob", tweet.ai_prob.toFixed(2)) : el("span", "muted", "–"));
  row.append(model);

  const gold = el("td", "gold");
  row.append(gold);
  markLabel(row, tweet);
  return row;
}
