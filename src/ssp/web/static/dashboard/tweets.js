// Builds a tweet's table row the way templates/dashboard/_macros.html renders it on the server.
// Tweet text and links are untrusted: they only ever reach the page through textContent and
// setAttribute, never through innerHTML, and only http(s) URLs become links.

export function timeText(iso) {
  return iso ? iso.slice(0, 19).replace("T", " ") + " UTC" : "";
}

export function safeHref(url) {
  if (typeof url !== "string" || /[\s\u0000-\u001f\u007f]/.test(url)) return null;
  try {
    const parsed = new URL(url);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.hostname ? url : null;
  } catch {
    return null;
  }
}

function cell(className, text) {
  const td = document.createElement("td");
  td.className = className;
  if (text !== undefined) td.textContent = text;
  return td;
}

function linkElement(link) {
  const div = document.createElement("div");
  div.className = "link";
  // the server decided already; checking again keeps a bad href out even if the API changes
  const href = link.href && safeHref(link.href);
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = link.url;
    div.append(a);
  } else {
    const span = document.createElement("span");
    span.className = "unsafe-link";
    span.title = "not an http(s) link: shown as text";
    span.textContent = link.url;
    div.append(span);
  }
  return div;
}

export function tweetRow(tweet) {
  const tr = document.createElement("tr");
  tr.className = "tweet";
  tr.dataset.id = tweet.id;
  const time = document.createElement("time");
  time.dateTime = tweet.created_at;
  time.textContent = timeText(tweet.created_at);
  const timeCell = cell("time");
  // the post on its own platform (x.com or bsky.app), as the server renders it
  const postHref = tweet.post_url && safeHref(tweet.post_url);
  if (postHref) {
    const a = document.createElement("a");
    a.className = "post-link";
    a.href = postHref;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.title = `open on ${tweet.platform}`;
    a.append(time);
    timeCell.append(a);
  } else {
    timeCell.append(time);
  }
  const links = cell("links");
  for (const link of tweet.links) links.append(linkElement(link));
  tr.append(
    timeCell,
    cell("user", tweet.user ? "@" + tweet.user : ""),
    cell("prob", Number(tweet.ai_prob).toFixed(3)),
    cell("text", tweet.text),
    links,
  );
  return tr;
}
