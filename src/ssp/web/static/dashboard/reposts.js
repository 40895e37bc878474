// The Reposts page's keyboard: j / k (or the down / up arrows) move between candidates, a approves the
// current one, s skips it. A decision submits that row's form (with the page's CSRF token), as a click would.
const rows = Array.from(document.querySelectorAll("#candidates tr.candidate"));
let current = rows.length ? 0 : -1;

function show() {
  rows.forEach((row, index) => row.classList.toggle("current", index === current));
  if (current >= 0) rows[current].scrollIntoView({ block: "nearest" });
}

function decide(decision) {
  if (current < 0) return;
  const form = rows[current].querySelector(`form.decision[data-decision="${decision}"]`);
  if (form) form.requestSubmit();
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLElement && event.target.closest("input, textarea, select")) return;
  const moves = { j: 1, ArrowDown: 1, k: -1, ArrowUp: -1 };
  if (event.key in moves && rows.length) {
    current = Math.min(rows.length - 1, Math.max(0, current + moves[event.key]));
    show();
  } else if (event.key === "a") {
    decide("approve");
  } else if (event.key === "s") {
    decide("skip");
  } else {
    return;
  }
  event.preventDefault();
});

document.body.dataset.repostsReady = "true";
show();
