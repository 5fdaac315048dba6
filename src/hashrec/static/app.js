// The compose box: asks POST /recommend while the user types and shows the hashtags as chips.
"use strict";

const DEBOUNCE_MS = 250;
const SHOWN = 8;                                     // chips on screen
const CJK = /[\u3400-\u9fff\uf900-\ufaff]/;
const WEIBO_TAG = /#([^#\n]{1,40}?)#/g;              // the server's hashrec.data rules
const TWITTER_TAG = /(^|\s)#([\p{L}\p{N}_]+)/gu;

const post = document.getElementById("post");
const chips = document.getElementById("chips");
const statusLine = document.getElementById("status");
const why = document.getElementById("why");
const mirror = document.getElementById("mirror");

let limits = { max_k: 100, max_text_chars: 2000 };
let explain = false;   // set from GET /model: only models with attention can explain
let seq = 0;           // number of the latest request; older answers are ignored
let timer = 0;
let inflight = null;   // AbortController of the request in flight
let last = { query: null, result: null };

const chinese = (text) => CJK.test(text);

/** Hashtags already in the post, and the text without them (what the model was trained on). */
function split(text) {
  const tags = new Set();
  let rest = text.replace(WEIBO_TAG, (_, t) => { tags.add(t.trim()); return " "; });
  rest = rest.replace(TWITTER_TAG, (_, space, t) => { tags.add(t.toLowerCase()); return space; });
  return { tags, body: rest.replace(/\s+/g, " ").trim() };
}

/**
 * How sure the model is, as a person reads it: the calibrated confidence (the probability that
 * the author would use the hashtag) as a percentage. Raw scores mean nothing across models, so a
 * model without calibration (confidence null) shows none: its chips are in its order only.
 */
function confidenceText(h) {
  if (h.confidence === null) return "";
  const p = 100 * h.confidence;
  return (p >= 1 ? p.toFixed(0) : "<1") + "%";
}

function addHashtag(tag, button) {
  const form = chinese(post.value) || chinese(tag) ? `#${tag}#` : `#${tag}`;
  const text = post.value.replace(/\s+$/, "");
  post.value = (text ? text + " " : "") + form + " ";
  const index = [...chips.children].indexOf(button.parentElement);
  render();  // the chip leaves: the post now has its hashtag
  // Keyboard users stay in the list: focus moves to the chip that took this one's place.
  const buttons = chips.querySelectorAll("button");
  (buttons[Math.min(index, buttons.length - 1)] || post).focus();
}

function chip(h) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "chip";
  button.dataset.hashtag = h.hashtag;
  const sure = confidenceText(h);
  button.setAttribute("aria-label", `add hashtag ${h.hashtag}` + (sure ? `, ${sure} likely` : ""));
  button.title = (sure ? `${sure}: how often the author used such a suggestion on held-out posts; ` : "")
    + `model score ${h.score.toPrecision(4)}`;
  const name = document.createElement("span");
  name.textContent = "#" + h.hashtag;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = sure;
  button.append(name, score);
  button.addEventListener("click", () => addHashtag(h.hashtag, button));
  li.append(button);
  return li;
}

/** Shows the last answer, without the hashtags the post already has. */
function render() {
  const { tags } = split(post.value);
  const result = last.result;
  const shown = result ? result.hashtags.filter((h) => !tags.has(h.hashtag)).slice(0, SHOWN) : [];
  const focused = chips.contains(document.activeElement) ? document.activeElement.dataset.hashtag : null;
  chips.replaceChildren(...shown.map(chip));
  if (focused) {  // a new answer must not throw keyboard focus out of the list
    const same = [...chips.querySelectorAll("button")].find((b) => b.dataset.hashtag === focused);
    (same || chips.querySelector("button") || post).focus();
  }
  renderTriggers(result && result.triggers);
}

function escapeRegExp(s) { return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

/** The post with the trigger words marked, their shade following their attention weight. */
function renderTriggers(triggers) {
  why.hidden = !triggers || triggers.length === 0;
  if (why.hidden) return;
  const text = post.value;
  const max = Math.max(...triggers.map((t) => t.weight)) || 1;
  const weight = new Map(triggers.map((t) => [t.word.toLowerCase(), t.weight / max]));
  const words = [...weight.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  const pattern = new RegExp(words.join("|"), "giu");
  const parts = [];
  let at = 0;
  for (const m of text.matchAll(pattern)) {
    parts.push(document.createTextNode(text.slice(at, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    const w = weight.get(m[0].toLowerCase());
    mark.style.setProperty("--weight", (0.25 + 0.75 * w).toFixed(2));
    mark.title = `attention ${(w * max).toFixed(2)}`;
    parts.push(mark);
    at = m.index + m[0].length;
  }
  parts.push(document.createTextNode(text.slice(at)));
  mirror.replaceChildren(...parts);
}

async function suggest() {
  const { tags, body } = split(post.value);
  if (!body) {
    inflight?.abort();
    last = { query: null, result: null };
    statusLine.textContent = "";
    render();
    return;
  }
  const text = body.slice(0, limits.max_text_chars);
  const k = Math.min(SHOWN + tags.size, limits.max_k);  // enough left once the post's own are hidden
  const query = JSON.stringify([text, k]);
  if (query === last.query) { render(); return; }  // nothing the model sees has changed
  const mine = ++seq;
  inflight?.abort();
  inflight = new AbortController();
  statusLine.textContent = "thinking…";
  try {
    const response = await fetch("/recommend", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, k, explain }),
      signal: inflight.signal,
    });
    const answer = await response.json();
    if (mine !== seq) return;  // a newer request was sent meanwhile
    if (!response.ok) {
      const d = answer.detail;
      statusLine.textContent = "no suggestions: " + (Array.isArray(d) ? d.map((e) => e.msg).join("; ") : d);
      last = { query: null, result: null };
    } else {
      last = { query, result: answer };
      statusLine.textContent = answer.hashtags.length === 0 ? "no hashtag fits this post"
        : body.length > text.length ? `suggestions use the first ${limits.max_text_chars} characters` : "";
    }
    render();
  } catch (err) {
    if (err.name !== "AbortError" && mine === seq) statusLine.textContent = "the server did not answer; try again";
  }
}

post.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(suggest, DEBOUNCE_MS);
});

const TRENDS_EVERY_MS = 5000;
const trending = document.getElementById("trending");

/** The hashtags rising in the last hour (GET /trending), when the server learns from a post log. */
async function showTrends() {
  const response = await fetch("/trending?window=1h&k=10");
  if (!response.ok) return;  // a server without a post log has no trends
  const answer = await response.json();
  const items = answer.hashtags.map((t) => {
    const li = document.createElement("li");
    li.dataset.hashtag = t.hashtag;
    li.textContent = `#${t.hashtag} `;
    const count = document.createElement("span");
    count.className = "score";
    count.textContent = `${t.count.toLocaleString()} posts`;
    count.title = `${t.expected} expected from the day before`;
    li.append(count);
    return li;
  });
  document.getElementById("trends").replaceChildren(...items);
  trending.hidden = false;
}

/** Keeps the trends and the index size current while the page is open. */
async function refreshLive() {
  try {
    const m = await (await fetch("/model")).json();
    if (!m.live) return;
    document.getElementById("index").textContent =
      `index: ${m.live.index_posts.toLocaleString()} posts · log: ${m.live.log_posts.toLocaleString()} posts`;
    await showTrends();
  } finally {
    setTimeout(refreshLive, TRENDS_EVERY_MS);
  }
}
refreshLive();

fetch("/model").then((r) => r.json()).then((m) => {
  limits = m.limits;
  explain = m.supports_explain;
  document.getElementById("model").textContent =
    `model ${m.name} · ${m.labels.toLocaleString()} hashtags` + (explain ? " · explains" : "")
    + (m.calibration ? "" : " · no calibrated confidence: hashtags in the model's order");
  detailsTable(m);
  if (post.value.trim()) suggest();
}).catch(() => { document.getElementById("model").textContent = "model unavailable"; });

/** GET /model as a two-column table: one row per field, nested objects flattened to "a.b" keys. */
function detailsTable(m) {
  const rows = [];
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, inner);
    } else {
      const shown = typeof value === "number" && !Number.isInteger(value) ? value.toPrecision(4)
        : Array.isArray(value) ? value.join(", ") : String(value);
      rows.push([prefix, shown]);
    }
  };
  walk("", m);
  const table = document.getElementById("model-table");
  table.replaceChildren(...rows.filter(([key]) => !key.startsWith("trained_on.history")).map(([key, shown]) => {
    const tr = document.createElement("tr");
    for (const text of [key, shown]) {
      const cell = document.createElement(tr.children.length ? "td" : "th");
      cell.textContent = text;  // text, never HTML: a config value cannot inject markup
      tr.append(cell);
    }
    return tr;
  }));
}
