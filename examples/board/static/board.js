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
  drafts: {},          // the edit form's values
  tagDrafts: {},       // id -> what is typed in the card's tag field
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

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function button(text, title, cls, onclick) {
  return el("button", { textContent: text, title, className: cls, type: "button", onclick });
}

function columnOf(doc) {
  return COLUMNS.some(([c]) => c === doc.column) ? doc.column : COLUMNS[0][0];
}

function render() {
  const board = $("board");
  const focused = document.activeElement && document.activeElement.dataset.draft;
  board.replaceChildren();
  const ids = [...state.cards.keys()].sort();
  COLUMNS.forEach(([col, label], ci) => {
    const column = el("section", { className: "column" }, el("h2", { textContent: label }));
    column.dataset.column = col;
    for (const id of ids) {
      const doc = state.cards.get(id);
      if (columnOf(doc) === col) column.append(renderCard(id, doc, ci));
    }
    board.append(column);
  });
  if (focused) {
    const f = board.querySelector(`[data-draft="${focused}"]`);
    if (f) f.focus();
  }
}

function renderCard(id, doc, ci) {
  const card = el("article", { className: "card" });
  card.dataset.id = id;
  const title = typeof doc.title === "string" ? doc.title : "(untitled)";
  if (state.editing === id) {
    const t = el("input", { className: "edit-title", value: state.drafts.title, maxLength: MAX_TITLE });
    t.dataset.draft = "title";
    t.oninput = () => { state.drafts.title = t.value; };
    const n = el("textarea", { className: "edit-notes", value: state.drafts.notes, rows: 3 });
    n.dataset.draft = "notes";
    n.oninput = () => { state.drafts.notes = n.value; };
    card.append(t, n, el("div", { className: "actions" },
      button("Save", "save the title and notes", "save", () => save(id, doc)),
      button("Cancel", "", "cancel", () => { state.editing = null; render(); })));
    return card;
  }
  card.append(el("div", { className: "title", textContent: title }));
  const sibs = state.siblings.get(id);
  if (sibs) {
    const list = el("ul");
    sibs.forEach((s, i) => {
      const v = typeof s.value === "string" ? s.value : JSON.stringify(s.value);
      list.append(el("li", { className: "sibling" },
        el("span", { className: "sibling-value", textContent: v }),
        ` (${i === 0 ? "shown" : "lost"}, by ${String(s.origin).slice(0, 6)}) `,
        button("Keep", "make this the title", "keep", () => write("keeping a title", () => patch(id, { set: { title: s.value } })))));
    });
    card.append(el("div", { className: "conflict" }, "Concurrent titles:", list));
  }
  if (typeof doc.notes === "string" && doc.notes !== "") card.append(el("div", { className: "notes", textContent: doc.notes }));
  if (doc.column === undefined) {
    // Only a delete concurrent with an edit leaves a card without a
    // column: the edit's fields survive, the rest went with the delete.
    card.append(el("div", { className: "survivor", textContent: "kept by an edit made concurrently with its delete" }));
  }
  const tags = el("div", { className: "tags" });
  for (const tag of Array.isArray(doc.tags) ? doc.tags : []) {
    tags.append(el("span", { className: "tag" }, tag,
      button("×", "remove the tag", "untag", () => write("removing a tag", () => patch(id, { remove: { tags: [tag] } })))));
  }
  const tagInput = el("input", { className: "tag-input", placeholder: "tag", maxLength: MAX_TAG, size: 8 });
  tagInput.dataset.draft = "tag-" + id;
  tagInput.value = state.tagDrafts[id] || "";
  tagInput.oninput = () => { state.tagDrafts[id] = tagInput.value; };
  const addTag = () => write("adding a tag", async () => {
    await patch(id, { add: { tags: [checkText("a tag", tagInput.value, MAX_TAG)] } });
    delete state.tagDrafts[id];
    render();
  });
  tagInput.onkeydown = (e) => { if (e.key === "Enter") addTag(); };
  card.append(tags, el("div", { className: "actions" },
    button(`▲ ${Number(doc.votes) || 0}`, "vote", "vote", () => write("voting", () => patch(id, { incr: { votes: 1 } }))),
    tagInput,
    button("+", "add the tag", "tag", addTag),
    ci > 0 ? button("◀", "move left", "left", () => write("moving", () => patch(id, { set: { column: COLUMNS[ci - 1][0] } }))) : null,
    ci < COLUMNS.length - 1 ? button("▶", "move right", "right", () => write("moving", () => patch(id, { set: { column: COLUMNS[ci + 1][0] } }))) : null,
    button("✎", "edit the title and notes", "edit", () => {
      state.editing = id;
      state.drafts = { title: typeof doc.title === "string" ? doc.title : "", notes: typeof doc.notes === "string" ? doc.notes : "" };
      render();
    }),
    button("🗑", "delete the card", "delete", () => write("deleting", () => api("DELETE", keyURL(id))))));
  return card;
}

// save writes only the fields that changed, so that a concurrent edit of
// the other one is not overwritten.
function save(id, doc) {
  write("saving", async () => {
    const set = {};
    const title = checkText("the title", state.drafts.title, MAX_TITLE);
    if (title !== doc.title) set.title = title;
    if (state.drafts.notes.length > MAX_NOTES) throw new Error(`the notes are longer than ${MAX_NOTES} characters`);
    if (state.drafts.notes !== (doc.notes || "")) set.notes = state.drafts.notes;
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
