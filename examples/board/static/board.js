// The board page: a mirror of the keys under card/ kept current from the
// watch stream (GET /v1/watch), writes through the HTTP API. Plain JS, no
// build step. A card is a map document: title, notes and column registers,
// tags a set, votes a counter.
"use strict";

const PREFIX = "card/";
const COLUMNS = [["todo", "To do"], ["doing", "Doing"], ["done", "Done"]];
const MAX_TITLE = 200, MAX_NOTES = 2000, MAX_TAG = 40;

const state = {
  cards: new Map(),    // id -> document (the value of card/<id>)
  siblings: new Map(), // id -> concurrent titles, winner first (only when more than one)
  sibGen: new Map(),   // id -> generation of the last siblings request
  editing: null,       // id of the card whose edit form is open
  synced: false,       // the watch stream's catch-up ended
};

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const keyURL = (id) => "/v1/kv/" + encodeURIComponent(PREFIX + id);

function showError(msg) {
  $("error-text").textContent = msg;
  $("error").hidden = false;
}

// api calls the HTTP API; an error answer becomes an Error with the
// server's message.
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { /* not JSON */ }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

// write runs a change and shows its error, if any, in the page.
async function write(what, fn) {
  try {
    await fn();
  } catch (e) {
    showError(`${what}: ${e.message}`);
  }
}

const patch = (id, p) => api("PATCH", keyURL(id), p);

function newID() {
  const rnd = new Uint8Array(3);
  crypto.getRandomValues(rnd);
  return Date.now().toString(36) + Array.from(rnd, (b) => b.toString(16).padStart(2, "0")).join("");
}

function checkText(what, s, max) {
  if (typeof s !== "string" || s.trim() === "") throw new Error(`${what} is empty`);
  if (s.length > max) throw new Error(`${what} is longer than ${max} characters`);
  return s.trim();
}

// --- applying changes -------------------------------------------------

function applyEvent(ev) {
  switch (ev.kind || "") {
    case "reset": // a full resend follows: forget what we have
      state.cards.clear();
      state.siblings.clear();
      break;
    case "synced":
      state.synced = true;
      document.body.dataset.ready = "1";
      break;
    case "":
    case "state":
      if (!ev.key || !ev.key.startsWith(PREFIX)) return;
      setCard(ev.key.slice(PREFIX.length), ev.deleted ? null : ev.value);
      break;
  }
  render();
}

function setCard(id, doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    state.cards.delete(id);
    state.siblings.delete(id);
    return;
  }
  state.cards.set(id, doc);
  loadSiblings(id);
}

// loadSiblings asks for the concurrent values of the card's title; only
// the answer to the latest request counts.
async function loadSiblings(id) {
  const gen = (state.sibGen.get(id) || 0) + 1;
  state.sibGen.set(id, gen);
  let sibs = [];
  try {
    const a = await api("GET", keyURL(id) + "?siblings=true&field=title");
    sibs = a.siblings || [];
  } catch (e) {
    if (e.status !== 404) showError(`reading the titles of a card: ${e.message}`);
  }
  if (state.sibGen.get(id) !== gen) return;
  if (sibs.length > 1 && state.cards.has(id)) state.siblings.set(id, sibs);
  else state.siblings.delete(id);
  render();
}

// watch follows GET /v1/watch from offset 0 (the catch-up sends every
// card once, then synced), resuming after the last id it received when the
// stream drops.
async function watch() {
  let from = 0;
  for (;;) {
    try {
      let url = "/v1/watch?prefix=" + encodeURIComponent(PREFIX);
      if (from !== null) url += "&from=" + from;
      const resp = await fetch(url);
      if (resp.status === 410) {
        // The log no longer holds that offset: follow live and read the
        // cards once.
        from = null;
        continue;
      }
      if (!resp.ok) throw new Error(`watch: HTTP ${resp.status}`);
      setWatchState("live");
      if (from === null) readAll();
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = parseBlock(block);
          if (!ev) continue;
          if (ev.event === "error") throw new Error(ev.data.error || "watch ended");
          applyEvent(ev.data);
          if (ev.id !== null) from = ev.id + 1;
        }
      }
      throw new Error("watch stream ended");
    } catch (e) {
      setWatchState("reconnecting (" + e.message + ")");
    }
    await sleep(1000);
  }
}

function parseBlock(block) {
  let id = null, event = "", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const c = line.indexOf(":");
    const field = c < 0 ? line : line.slice(0, c);
    const val = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
    if (field === "id") id = Number(val);
    else if (field === "event") event = val;
    else if (field === "data") data += val;
  }
  if (!data) return null;
  try {
    return { id, event, data: JSON.parse(data) };
  } catch (e) {
    showError("watch: an event that is not JSON: " + data.slice(0, 80));
    return null;
  }
}

async function readAll() {
  try {
    const list = await api("GET", "/v1/kv?prefix=" + encodeURIComponent(PREFIX));
    for (const k of list.keys || []) {
      const id = k.key.slice(PREFIX.length);
      try {
        const v = await api("GET", keyURL(id));
        if (!state.cards.has(id)) setCard(id, v.value);
      } catch (e) { /* deleted meanwhile */ }
    }
    applyEvent({ kind: "synced" });
  } catch (e) {
    showError("reading the cards: " + e.message);
  }
}

// --- rendering --------------------------------------------------------
//
// render builds the board afresh and morphs the live DOM into it: elements
// that did not change stay as they are (a click or a half-typed tag is not
// lost when a change arrives), and cards are matched by id, never by
// position. Buttons carry a data-action; one listener dispatches them.

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function button(text, title, action, extra) {
  return el("button", Object.assign({ textContent: text, title, type: "button", className: action, "data-action": action }, extra || {}));
}

function columnOf(doc) {
  return COLUMNS.some(([c]) => c === doc.column) ? doc.column : COLUMNS[0][0];
}

function render() {
  const next = el("main", { id: "board" });
  const ids = [...state.cards.keys()].sort();
  COLUMNS.forEach(([col, label], ci) => {
    const column = el("section", { className: "column", "data-key": "col-" + col, "data-column": col }, el("h2", { textContent: label }));
    for (const id of ids) {
      const doc = state.cards.get(id);
      if (columnOf(doc) === col) column.append(renderCard(id, doc, ci));
    }
    next.append(column);
  });
  morph($("board"), next);
}

function renderCard(id, doc, ci) {
  const card = el("article", { className: "card", "data-key": "card-" + id, "data-id": id });
  const text = (v) => (typeof v === "string" ? v : "");
  if (state.editing === id) {
    card.append(
      el("input", { className: "edit-title", value: text(doc.title), maxLength: MAX_TITLE, "data-key": "edit-title" }),
      el("textarea", { className: "edit-notes", value: text(doc.notes), rows: 3, "data-key": "edit-notes" }),
      el("div", { className: "actions" }, button("Save", "save the title and notes", "save"), button("Cancel", "", "cancel")));
    return card;
  }
  card.append(el("div", { className: "title", textContent: typeof doc.title === "string" ? doc.title : "(untitled)" }));
  const sibs = state.siblings.get(id);
  if (sibs) {
    const list = el("ul");
    sibs.forEach((s, i) => {
      const v = typeof s.value === "string" ? s.value : JSON.stringify(s.value);
      list.append(el("li", { className: "sibling" },
        el("span", { className: "sibling-value", textContent: v }),
        ` (${i === 0 ? "shown" : "lost"}, by ${String(s.origin).slice(0, 6)}) `,
        button("Keep", "make this the title", "keep", { "data-index": String(i) })));
    });
    card.append(el("div", { className: "conflict" }, "Concurrent titles:", list));
  }
  if (text(doc.notes) !== "") card.append(el("div", { className: "notes", textContent: doc.notes }));
  if (doc.column === undefined) {
    // Only a delete concurrent with an edit leaves a card without a
    // column: the edit's fields survive, the rest went with the delete.
    card.append(el("div", { className: "survivor", textContent: "kept by an edit made concurrently with its delete" }));
  }
  const tags = el("div", { className: "tags" });
  for (const tag of Array.isArray(doc.tags) ? doc.tags : []) {
    tags.append(el("span", { className: "tag", "data-key": "tag-" + tag, "data-tag": tag }, tag, button("×", "remove the tag", "untag")));
  }
  card.append(tags, el("div", { className: "actions" },
    button(`▲ ${Number(doc.votes) || 0}`, "vote", "vote"),
    el("input", { className: "tag-input", placeholder: "tag", maxLength: MAX_TAG, size: 8, "data-key": "tag-input" }),
    button("+", "add the tag", "add-tag"),
    ci > 0 ? button("◀", "move left", "left") : null,
    ci < COLUMNS.length - 1 ? button("▶", "move right", "right") : null,
    button("✎", "edit the title and notes", "edit"),
    button("Delete", "delete the card", "delete")));
  return card;
}

// morph makes the live node from look like to, keeping what did not
// change. Children with a data-key are matched by key; the others by
// position. The value of a live input is the user's: left alone.
function morph(from, to) {
  if (from.nodeType !== to.nodeType || from.nodeName !== to.nodeName) {
    from.replaceWith(to);
    return;
  }
  if (from.nodeType !== Node.ELEMENT_NODE) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  for (const a of [...from.attributes]) if (!to.hasAttribute(a.name)) from.removeAttribute(a.name);
  for (const a of [...to.attributes]) if (from.getAttribute(a.name) !== a.value) from.setAttribute(a.name, a.value);
  const keyed = new Map();
  for (const c of from.childNodes) if (c.dataset && c.dataset.key) keyed.set(c.dataset.key, c);
  const wanted = [...to.childNodes];
  let i = 0;
  for (const t of wanted) {
    const key = t.dataset && t.dataset.key;
    let f = key ? keyed.get(key) : from.childNodes[i];
    if (f && !key && f.dataset && f.dataset.key) f = undefined; // a keyed node is not reused by position
    if (f) {
      keyed.delete(key);
      if (from.childNodes[i] !== f) from.insertBefore(f, from.childNodes[i] || null);
      morph(f, t);
    } else {
      from.insertBefore(t, from.childNodes[i] || null);
    }
    i++;
  }
  while (from.childNodes.length > i) from.lastChild.remove();
}

$("board").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-action]");
  const card = b && b.closest(".card");
  if (!card) return;
  const id = card.dataset.id;
  const doc = state.cards.get(id);
  if (!doc) return;
  const ci = COLUMNS.findIndex(([c]) => c === columnOf(doc));
  switch (b.dataset.action) {
    case "vote":
      return write("voting", () => patch(id, { incr: { votes: 1 } }));
    case "add-tag": {
      const input = card.querySelector(".tag-input");
      return write("adding a tag", async () => {
        await patch(id, { add: { tags: [checkText("a tag", input.value, MAX_TAG)] } });
        input.value = "";
      });
    }
    case "untag": {
      const tag = b.closest(".tag").dataset.tag;
      return write("removing a tag", () => patch(id, { remove: { tags: [tag] } }));
    }
    case "left":
    case "right": {
      const to = COLUMNS[ci + (b.dataset.action === "left" ? -1 : 1)];
      if (to) write("moving", () => patch(id, { set: { column: to[0] } }));
      return;
    }
    case "delete":
      return write("deleting", () => api("DELETE", keyURL(id)));
    case "edit":
      state.editing = id;
      render();
      card.querySelector(".edit-title").focus();
      return;
    case "cancel":
      state.editing = null;
      render();
      return;
    case "save":
      return save(id, doc, card);
    case "keep": {
      const s = (state.siblings.get(id) || [])[Number(b.dataset.index)];
      if (s) write("keeping a title", () => patch(id, { set: { title: s.value } }));
      return;
    }
  }
});

$("board").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && e.target.classList.contains("tag-input")) {
    e.target.closest(".card").querySelector("button.add-tag").click();
  }
});

// save writes only the fields that changed, so that a concurrent edit of
// the other one is not overwritten.
function save(id, doc, card) {
  write("saving", async () => {
    const set = {};
    const title = checkText("the title", card.querySelector(".edit-title").value, MAX_TITLE);
    const notes = card.querySelector(".edit-notes").value;
    if (title !== doc.title) set.title = title;
    if (notes.length > MAX_NOTES) throw new Error(`the notes are longer than ${MAX_NOTES} characters`);
    if (notes !== (doc.notes || "")) set.notes = notes;
    if (Object.keys(set).length > 0) await patch(id, { set });
    state.editing = null;
    render();
  });
}

// --- status line and offline switch ------------------------------------

let watchState = "connecting";
function setWatchState(s) { watchState = s; }

async function pollSync() {
  for (;;) {
    const parts = [];
    try {
      const s = await api("GET", "/v1/sync");
      for (const p of s.peers || []) {
        const behind = Math.max(0, Number(s.local) - Number(p.acked));
        const span = el("span", { className: p.synced ? "synced" : "behind" },
          `${p.name}: ${p.synced ? "synced" : `behind by ${behind} op${behind === 1 ? "" : "s"}`}${p.state !== "alive" ? ` (${p.state})` : ""}`);
        span.dataset.peer = p.name;
        parts.push(span);
      }
      if (parts.length === 0) parts.push("no peers");
    } catch (e) {
      parts.push("sync status: " + e.message);
    }
    const status = $("status");
    status.replaceChildren(`watch: ${watchState} · `);
    parts.forEach((p, i) => status.append(i ? " · " : "", p));
    await sleep(1000);
  }
}

async function loadBoard() {
  try {
    const b = await api("GET", "/board");
    $("replica").textContent = "· " + b.name;
    document.title = "shoal board · " + b.name;
    $("offline").checked = b.offline;
    $("offline-note").hidden = !b.offline;
    document.body.dataset.offline = b.offline ? "1" : "0";
  } catch (e) {
    showError("reading the board: " + e.message);
  }
}

$("offline").onchange = (e) => write("switching offline", async () => {
  const b = await api("POST", "/board", { offline: e.target.checked });
  $("offline").checked = b.offline;
  $("offline-note").hidden = !b.offline;
  document.body.dataset.offline = b.offline ? "1" : "0";
});

$("add").onsubmit = (e) => {
  e.preventDefault();
  write("adding a card", async () => {
    const title = checkText("the title", $("new-title").value, MAX_TITLE);
    await patch(newID(), { set: { title, notes: "", column: COLUMNS[0][0] } });
    $("new-title").value = "";
  });
};

$("error-close").onclick = () => { $("error").hidden = true; };

loadBoard();
watch();
pollSync();
