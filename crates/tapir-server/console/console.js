// The tapir web console: a switchboard over the public API and the event
// stream, and the call history from the CDRs. No framework: the DOM is built
// with textContent only (nothing the server or a caller id says is parsed
// as HTML).

import {
  OPS, GROUPS, COMPLETION_MODES, FORWARD_MODES, MEDIA_MODES, fits, missingInput, consultOf,
  swapCandidates, formatDuration, errorText, partyText, describeEvent, forwardingText, lampOf,
} from "./ops.js";

const TOKEN_KEY = "tapir.console.token";
const ADMIN_KEY = "tapir.console.admin";
const LOG_LIMIT = 300;

const store = {
  token: sessionStorage.getItem(TOKEN_KEY),
  lines: [],
  /** address -> {address, line, forwarding:{rules,no_answer_rings}} */
  addresses: new Map(),
  /** call id -> call object (+ `state_seq`: the seq of the last state event applied) */
  calls: new Map(),
  /** slot -> {slot, call, since} */
  parked: new Map(),
  selected: null,
  /** Last event seq applied (the stream resumes after it). */
  seq: 0,
  ws: null,
  wsGeneration: 0,
  retry: 0,
  historyBefore: null,
};

// ---------------------------------------------------------------- helpers

const $ = (id) => document.getElementById(id);

/** Build an element: attributes, then children (strings become text). */
function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A failed API call: HTTP status and the API's code and message. */
class ApiFailure extends Error {
  constructor(status, body, fallback) {
    super(errorText(status, body, fallback));
    this.status = status;
    this.code = body?.error?.code;
  }
}

/** Call the API with a bearer token; resolves to the JSON body (or null). */
async function api(method, path, body, token = store.token) {
  const headers = { Authorization: `Bearer ${token}` };
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiFailure(0, null, `the server cannot be reached (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) throw new ApiFailure(resp.status, data, text || resp.statusText);
  return data;
}

let statusTimer = 0;
/** Show an error (or, with `ok`, a notice) in the alert bar. */
function showStatus(text, ok = false) {
  const s = $("status");
  s.textContent = text;
  s.className = ok ? "status ok" : "status error";
  s.hidden = false;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { s.hidden = true; }, ok ? 4000 : 12000);
}

/** Run an action, showing its error the API's way. */
async function attempt(what, fn) {
  try {
    return await fn();
  } catch (e) {
    showStatus(`${what}: ${e.message}`);
    return undefined;
  }
}

function setStreamState(text, cls) {
  const s = $("stream-state");
  s.textContent = text;
  s.className = `pill ${cls || ""}`;
}

// ---------------------------------------------------------------- views

function route() {
  const history = location.hash === "#history";
  const signedIn = Boolean(store.token);
  $("login").hidden = signedIn || history;
  $("switchboard").hidden = !signedIn || history;
  $("history").hidden = !history;
  $("sign-out").hidden = !signedIn;
  $("nav-switchboard").removeAttribute("aria-current");
  $("nav-history").removeAttribute("aria-current");
  $(history ? "nav-history" : "nav-switchboard").setAttribute("aria-current", "page");
}

// ---------------------------------------------------------------- lines and addresses

async function loadLines() {
  const lines = await api("GET", "/v1/lines");
  const next = Array.isArray(lines) ? lines : (lines?.lines || []);
  // Polled for registration changes: redraw only what changed.
  if (JSON.stringify(next) === JSON.stringify(store.lines)) return;
  const addressesChanged = JSON.stringify(next.map((l) => l.addresses))
    !== JSON.stringify(store.lines.map((l) => l.addresses));
  store.lines = next;
  renderLines();
  if (addressesChanged) renderAddressChoices();
}

/** Registration has no event: the lines are read again this often. */
const LINES_POLL_MS = 3000;

async function pollLines() {
  if (!store.token || document.hidden) return;
  try {
    await loadLines();
    await loadWebhooks();
    await loadRecordings();
  } catch (e) {
    if (e.status === 401) signOut();
  }
}

function registrationText(l) {
  const transports = (l.contacts || []).map((c) => c.transport).filter(Boolean);
  return transports.length ? `${l.registration} (${transports.join(", ")})` : l.registration;
}

function renderLines() {
  const body = $("lines-body");
  const focused = document.activeElement?.closest?.("#lines-body") ? document.activeElement.getAttribute("aria-label") : null;
  body.replaceChildren(...store.lines.map((l) => {
    const open = Array.isArray(l.open) && l.open.length > 0;
    return h("tr", { dataset: { line: l.id } },
      h("th", { scope: "row" }, l.addresses.join(", ")),
      h("td", {}, l.name || ""),
      h("td", {}, l.kind),
      h("td", {}, h("span", { class: `reg reg-${l.registration}` }, registrationText(l))),
      h("td", {}, open ? l.open.join(", ") : h("span", { class: "muted" }, "closed")),
      h("td", {}, open
        ? h("button", { type: "button", class: "small", "aria-label": `Close line ${l.address}`,
          onclick: () => closeLine(l) }, "Close")
        : h("button", { type: "button", class: "small", "aria-label": `Open line ${l.address}`,
          onclick: () => openLine(l) }, "Open")));
  }));
  if (focused) {
    // The line's button changed from Open to Close (or back): keep focus on its row.
    const row = [...body.querySelectorAll("button")].find((b) =>
      b.getAttribute("aria-label").replace(/^(Open|Close) /, "") === focused.replace(/^(Open|Close) /, ""));
    row?.focus();
  }
}

async function openLine(l) {
  await attempt(`open ${l.address}`, async () => {
    await api("POST", `/v1/lines/${encodeURIComponent(l.id)}/open`, { privileges: l.privileges });
    await loadLines();
    await refreshCalls();
  });
}

async function closeLine(l) {
  await attempt(`close ${l.address}`, async () => {
    await api("POST", `/v1/lines/${encodeURIComponent(l.id)}/close`);
    await loadLines();
    await refreshCalls();
  });
}

async function openAll() {
  await attempt("open all lines", async () => {
    for (const l of store.lines) {
      if (!(Array.isArray(l.open) && l.open.length)) {
        await api("POST", `/v1/lines/${encodeURIComponent(l.id)}/open`, { privileges: l.privileges });
      }
    }
    await loadLines();
    await refreshCalls();
  });
}

function allAddresses() {
  return store.lines.flatMap((l) => l.addresses);
}

function renderAddressChoices() {
  const addrs = allAddresses();
  for (const id of ["fwd-address", "make-from", "in-at"]) {
    const sel = $(id);
    const keep = sel.value;
    sel.replaceChildren(...addrs.map((a) => h("option", { value: a }, a)));
    if (addrs.includes(keep)) sel.value = keep;
  }
  renderParked();
}

async function loadAddresses() {
  await Promise.all(allAddresses().map(async (a) => {
    try {
      store.addresses.set(a, await api("GET", `/v1/addresses/${encodeURIComponent(a)}`));
    } catch (e) {
      store.addresses.set(a, { address: a, error: e.message });
    }
  }));
  renderAddresses();
}

function renderAddresses() {
  const live = new Map();
  for (const c of store.calls.values()) {
    if (c.state !== "idle") live.set(c.address, (live.get(c.address) || 0) + 1);
  }
  const calls = [...store.calls.values()];
  $("addresses-body").replaceChildren(...allAddresses().map((a) => {
    const st = store.addresses.get(a);
    const fwd = st?.error ? h("span", { class: "error-text" }, st.error)
      : (forwardingText(st?.forwarding?.rules) || h("span", { class: "muted" }, "none"));
    // The busy lamp, live from the event stream (calls and forwarding).
    const { lamp, text } = lampOf(a, calls, st?.forwarding?.rules);
    const lampCell = h("span", { class: `lamp lamp-${lamp}`, dataset: { lamp },
      role: "img", "aria-label": `${a}: ${text}`, title: text });
    return h("tr", { dataset: { address: a } },
      h("th", { scope: "row" }, a), h("td", {}, lampCell, " ", text), h("td", {}, fwd),
      h("td", {}, String(live.get(a) || 0)));
  }));
}

async function setForwarding(address, rules) {
  await attempt(`forward ${address}`, async () => {
    const st = await api("PUT", `/v1/addresses/${encodeURIComponent(address)}/forwarding`, { rules });
    store.addresses.set(address, st);
    renderAddresses();
  });
}

/** lineForward with bAllAddresses: the same rules on every address of the line of `address`. */
async function setLineForwarding(address, rules) {
  const line = store.lines.find((l) => l.addresses.includes(address));
  if (!line) return;
  await attempt(`forward line ${line.address}`, async () => {
    const r = await api("PUT", `/v1/lines/${encodeURIComponent(line.id)}/forwarding`, { rules });
    for (const st of r?.addresses || []) store.addresses.set(st.address, st);
    renderAddresses();
  });
}

/** Forward the chosen address, or (box ticked) every address of its line. */
function forward(address, rules) {
  return $("fwd-line").checked ? setLineForwarding(address, rules) : setForwarding(address, rules);
}

// ---------------------------------------------------------------- webhooks

/** A comma- or space-separated list from a text field (absent when empty). */
function listOf(text) {
  const items = text.split(/[\s,]+/).filter(Boolean);
  return items.length ? items : undefined;
}

async function loadWebhooks() {
  const data = await api("GET", "/v1/webhooks");
  renderWebhooks(data?.webhooks || []);
}

function renderWebhooks(hooks) {
  $("webhooks-empty").hidden = hooks.length > 0;
  $("webhooks-body").replaceChildren(...hooks.map((w) => h("tr", { dataset: { webhook: w.id } },
    h("th", { scope: "row" }, w.id),
    h("td", {}, w.url),
    h("td", {}, w.events.length ? w.events.join(", ") : h("span", { class: "muted" }, "all")),
    h("td", {}, w.addresses.length ? w.addresses.join(", ") : h("span", { class: "muted" }, "all")),
    h("td", { class: w.state === "active" ? "" : "error-text" }, w.state),
    h("td", {}, String(w.acked)),
    h("td", {}, String(w.pending)),
    h("td", {}, w.last_error || ""),
    h("td", {},
      w.state === "suspended"
        ? h("button", { type: "button", "aria-label": `Resume webhook ${w.id}`, onclick: () => resumeWebhook(w.id) }, "Resume")
        : null,
      h("button", { type: "button", "aria-label": `Delete webhook ${w.id}`, onclick: () => deleteWebhook(w.id) }, "Delete")))));
}

async function addWebhook() {
  await attempt("add webhook", async () => {
    const body = { url: $("wh-url").value.trim() };
    const events = listOf($("wh-events").value);
    const addresses = listOf($("wh-addresses").value);
    if (events) body.events = events;
    if (addresses) body.addresses = addresses;
    const batch = Number($("wh-batch").value);
    if (batch && batch !== 1) body.batch = batch;
    const w = await api("POST", "/v1/webhooks", body);
    // The secret is in this answer only: show it until the next change.
    const s = $("webhook-secret");
    s.textContent = `Secret of ${w.id} (shown once; the receiver checks Tapir-Signature with it): ${w.secret}`;
    s.hidden = false;
    $("wh-url").value = "";
    await loadWebhooks();
  });
}

async function resumeWebhook(id) {
  await attempt(`resume ${id}`, async () => {
    await api("PUT", `/v1/webhooks/${encodeURIComponent(id)}`, {});
    await loadWebhooks();
  });
}

async function deleteWebhook(id) {
  await attempt(`delete ${id}`, async () => {
    await api("DELETE", `/v1/webhooks/${encodeURIComponent(id)}`);
    $("webhook-secret").hidden = true;
    await loadWebhooks();
  });
}

// ---------------------------------------------------------------- recordings

async function loadRecordings() {
  const data = await api("GET", "/v1/recordings");
  renderRecordings(data?.recordings || []);
}

/** Bytes as KiB or MiB. */
function sizeText(bytes) {
  return bytes >= 1048576 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${Math.ceil(bytes / 1024)} KiB`;
}

function renderRecordings(recs) {
  $("recordings-empty").hidden = recs.length > 0;
  $("recordings-body").replaceChildren(...recs.map((r) => h("tr", { dataset: { recording: r.id } },
    h("th", { scope: "row" }, r.id),
    h("td", {}, r.call),
    h("td", {}, r.address),
    h("td", {}, r.channels),
    h("td", {}, r.end_reason ? `${r.state} (${r.end_reason})` : r.state),
    h("td", {}, r.started_at),
    h("td", {}, formatDuration(r.duration_ms)),
    h("td", {}, sizeText(r.size)),
    h("td", {},
      r.state === "stopped"
        ? h("button", { type: "button", "aria-label": `Download recording ${r.id}`, onclick: () => downloadRecording(r.id) }, "Download")
        : null,
      r.state === "stopped"
        ? h("button", { type: "button", "aria-label": `Delete recording ${r.id}`, onclick: () => deleteRecording(r.id) }, "Delete")
        : null))));
}

/** Fetch the WAV file with the token and hand it to the browser as a download. */
async function downloadRecording(id) {
  await attempt(`download ${id}`, async () => {
    const resp = await fetch(`/v1/recordings/${encodeURIComponent(id)}/audio`,
      { headers: { Authorization: `Bearer ${store.token}` } });
    if (!resp.ok) {
      const text = await resp.text();
      let data = null;
      try { data = JSON.parse(text); } catch { data = null; }
      throw new ApiFailure(resp.status, data, text || resp.statusText);
    }
    const url = URL.createObjectURL(await resp.blob());
    const a = h("a", { href: url, download: `${id}.wav` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
}

async function deleteRecording(id) {
  await attempt(`delete ${id}`, async () => {
    await api("DELETE", `/v1/recordings/${encodeURIComponent(id)}`);
    await loadRecordings();
  });
}

// ---------------------------------------------------------------- calls

/** Take the `GET /v1/calls` snapshot; returns the seq it matches. */
async function refreshCalls() {
  const list = await api("GET", "/v1/calls");
  const calls = Array.isArray(list) ? list : (list?.calls || []);
  const next = new Map();
  for (const c of calls) {
    const old = store.calls.get(c.id);
    next.set(c.id, { ...c, state_seq: old?.state_seq, ended_at: old?.ended_at });
  }
  store.calls = next;
  renderCalls();
  return list?.seq ?? 0;
}

const pending = new Map();
/** Fetch one call again soon (coalesced per call). */
function refreshCall(id) {
  if (pending.has(id)) return;
  pending.set(id, setTimeout(async () => {
    pending.delete(id);
    const asked = store.seq;
    try {
      const c = await api("GET", `/v1/calls/${encodeURIComponent(id)}`);
      const old = store.calls.get(id);
      // A state event newer than this request must not be rolled back by
      // its answer (that event schedules its own refresh).
      const newer = old && (old.state_seq ?? -1) > asked;
      store.calls.set(id, { ...old, ...c,
        state: newer ? old.state : c.state,
        state_mode: newer ? old.state_mode : c.state_mode });
    } catch (e) {
      if (e.status === 404) store.calls.delete(id);
      else showStatus(`refresh ${id}: ${e.message}`);
    }
    renderCalls();
  }, 60));
}

function stateText(c) {
  return c.state_mode && c.state !== "idle" ? `${c.state} (${c.state_mode})` : c.state;
}

function sinceOf(c) {
  const created = Date.parse(c.created_at);
  return Number.isNaN(created) ? null : created;
}

function renderCalls() {
  const calls = [...store.calls.values()];
  const focused = document.activeElement?.dataset?.call;
  $("calls-body").replaceChildren(...calls.map((c) => {
    const selected = c.id === store.selected;
    const called = partyText(c.called);
    const parties = called ? [partyText(c.caller), "→", called] : [partyText(c.caller)];
    if (c.connected && c.connected.address && TALKING.has(c.state)) {
      parties.push(`(talking to ${partyText(c.connected)})`);
    }
    return h("tr", { dataset: { call: c.id, state: c.state }, class: selected ? "selected" : "",
      "aria-selected": selected ? "true" : "false", onclick: () => select(c.id) },
    h("th", { scope: "row" }, h("button", { type: "button", class: "link",
      "aria-pressed": selected ? "true" : "false", dataset: { call: c.id },
      onclick: (e) => { e.stopPropagation(); select(c.id); } }, c.id)),
    h("td", {}, c.address),
    h("td", {}, h("span", { class: `state state-${c.state}`, dataset: { field: "state" } }, stateText(c))),
    h("td", {}, parties.join(" ")),
    // A call completion's call names its request (lineCompleteCall's id).
    h("td", {}, `${c.origin}${c.reason && c.reason !== "direct" ? ` / ${c.reason}` : ""}`
      + `${c.completion ? ` ${c.completion}` : ""}`),
    h("td", {}, c.privilege),
    ended(c) ? h("td", { class: "num" }, durationOf(c))
      : h("td", { class: "num", dataset: { since: sinceOf(c) ?? "" } }, durationOf(c)));
  }));
  $("calls-empty").hidden = calls.length > 0;
  if (focused) document.querySelector(`#calls-body button[data-call="${CSS.escape(focused)}"]`)?.focus();
  if (store.selected && !store.calls.has(store.selected)) store.selected = null;
  renderOps();
  renderAddresses();
}

/** States in which the connected party is the one talking. */
const TALKING = new Set(["connected", "onhold", "conferenced", "onholdpendtransfer", "onholdpendconf"]);

function ended(c) {
  return c.state === "idle" || c.state === "disconnected";
}

/** From creation to now, or to when the page saw it end (unknown: "—"). */
function durationOf(c) {
  const since = sinceOf(c);
  if (since === null) return "";
  if (ended(c)) return c.ended_at ? formatDuration(c.ended_at - since) : "—";
  return formatDuration(Date.now() - since);
}

function tick() {
  for (const td of document.querySelectorAll("td[data-since]")) {
    const since = Number(td.dataset.since);
    if (td.dataset.since !== "" && !Number.isNaN(since)) td.textContent = formatDuration(Date.now() - since);
  }
}

function select(id) {
  store.selected = id;
  renderCalls();
}

// ---------------------------------------------------------------- operations

function buildOpButtons() {
  $("op-buttons").replaceChildren(...GROUPS.map((g) =>
    h("fieldset", { class: "op-group" }, h("legend", {}, g),
      ...OPS.filter((o) => o.group === g).map((o) =>
        h("button", { type: "button", dataset: { op: o.id }, disabled: true,
          onclick: () => runOp(o) }, o.label)))));
  $("in-completion").replaceChildren(...COMPLETION_MODES.map((m) => h("option", {}, m)));
  $("in-media").replaceChildren(...MEDIA_MODES.map((m) => h("option", {}, m)));
  $("fwd-mode").replaceChildren(...FORWARD_MODES.map((m) => h("option", {}, m)));
}

function renderOps() {
  const calls = [...store.calls.values()];
  const call = store.selected ? store.calls.get(store.selected) : null;
  const sel = $("selected-call");
  if (call) {
    const consult = consultOf(call, calls);
    sel.replaceChildren("Selected: ", h("strong", {}, call.id), ` on ${call.address}, `,
      h("span", { class: `state state-${call.state}`, id: "selected-state" }, stateText(call)),
      ...(call.media_mode ? [", media ", h("span", { id: "selected-media" }, call.media_mode)] : []),
      consult ? ` — consultation ${consult.id}` : "");
  } else {
    sel.textContent = "Select a call.";
  }
  const withSel = $("in-with");
  const keep = withSel.value;
  const swaps = call ? swapCandidates(call, calls) : [];
  withSel.replaceChildren(...swaps.map((c) => h("option", { value: c.id }, `${c.id} (${c.state})`)));
  if (swaps.some((c) => c.id === keep)) withSel.value = keep;
  for (const b of document.querySelectorAll("#op-buttons button[data-op]")) {
    const op = OPS.find((o) => o.id === b.dataset.op);
    b.disabled = !fits(op, call, calls);
    if (op.id === "privilege" && call) {
      b.textContent = call.privilege === "owner" ? "Become monitor" : "Become owner";
    }
  }
}

function inputs() {
  return {
    to: $("in-to").value.trim(),
    digits: $("in-digits").value.trim(),
    slot: $("in-slot").value.trim(),
    with: $("in-with").value,
    mode: $("in-mode").value,
    completion: $("in-completion").value,
    at: $("in-at").value,
    group: $("in-group").value.trim(),
    app: $("in-app").value.trim(),
    media: $("in-media").value,
    channels: $("in-channels").value,
    tone: $("in-tone").value,
  };
}

async function runOp(op) {
  const call = store.calls.get(store.selected);
  if (!call) return;
  const input = inputs();
  const missing = missingInput(op, input);
  if (missing) {
    showStatus(missing);
    return;
  }
  const req = op.request(call, input, [...store.calls.values()]);
  const result = await attempt(`${op.label} ${call.id}`, () => api(req.method, req.path, req.body));
  if (result === undefined) return;
  if (op.id === "deallocate") {
    store.calls.delete(call.id);
    store.selected = null;
  }
  if (result && typeof result === "object") {
    // A call object back, or the calls a reply names.
    for (const c of [result, ...(result.calls || [])]) {
      if (c && c.id && c.state) merge(c);
    }
    if (result.parked_at) showStatus(`${call.id}: parked at ${result.parked_at}`, true);
    if (result.completion_id) showStatus(`completion request ${result.completion_id}`, true);
    if (result.recording) {
      showStatus(`${call.id}: recording ${result.recording}`, true);
      await attempt("recordings", loadRecordings);
    }
    const next = result.consult_call
      || (op.id === "pickup" || op.id === "pickup-waiting" ? result.id : null);
    if (next) store.selected = next;
  }
  renderCalls();
}

function merge(c) {
  const old = store.calls.get(c.id);
  store.calls.set(c.id, { ...old, ...c });
}

async function makeCall(from, to) {
  const body = to ? { from, to } : { from };
  const c = await attempt(`make call from ${from}`, () => api("POST", "/v1/calls", body));
  if (c && c.id) {
    merge(c);
    store.selected = c.id;
    renderCalls();
  }
}

async function clearIdle() {
  for (const c of [...store.calls.values()]) {
    if (c.state !== "idle") continue;
    const ok = await attempt(`deallocate ${c.id}`, () => api("DELETE", `/v1/calls/${encodeURIComponent(c.id)}`));
    if (ok !== undefined) store.calls.delete(c.id);
  }
  renderCalls();
}

// ---------------------------------------------------------------- parked calls

function renderParked() {
  const addrs = allAddresses();
  const rows = [...store.parked.values()].sort((a, b) => a.slot.localeCompare(b.slot));
  $("parked-body").replaceChildren(...rows.map((p) => {
    const to = h("select", { "aria-label": `Retrieve ${p.slot} to address` },
      ...addrs.map((a) => h("option", { value: a }, a)));
    return h("tr", { dataset: { slot: p.slot } },
      h("th", { scope: "row" }, p.slot),
      h("td", {}, p.call),
      h("td", { class: "num", dataset: { since: p.since ?? "" } }, p.since ? formatDuration(Date.now() - p.since) : ""),
      h("td", {}, to, " ", h("button", { type: "button", class: "small",
        onclick: () => unpark(to.value, p.slot) }, "Unpark")));
  }));
  $("parked-empty").hidden = rows.length > 0;
}

async function unpark(address, slot) {
  const c = await attempt(`unpark ${slot}`, () =>
    api("POST", `/v1/addresses/${encodeURIComponent(address)}/unpark`, { from: slot }));
  if (c && c.id) {
    merge(c);
    store.selected = c.id;
    renderCalls();
  }
}

// ---------------------------------------------------------------- events

function logEvent(ev, replayed) {
  const log = $("event-log");
  const time = new Date().toLocaleTimeString([], { hour12: false });
  const item = h("li", { class: replayed ? "replayed" : "", dataset: { type: ev.type || "" },
    title: JSON.stringify(ev) },
  h("span", { class: "ev-seq" }, ev.seq !== undefined ? `#${ev.seq}` : ""),
  h("span", { class: "ev-time" }, time),
  h("span", { class: "ev-type" }, ev.type || "?"),
  h("span", { class: "ev-text" }, describeEvent(ev)));
  log.prepend(item);
  while (log.children.length > LOG_LIMIT) log.lastElementChild.remove();
}

/** Apply one event to the switchboard. `replayed`: older than the snapshot. */
function apply(ev, replayed) {
  // Parked slots are only known from events: replayed ones count too.
  if (ev.type === "park.parked") {
    store.parked.set(ev.slot, { slot: ev.slot, call: ev.call, since: replayed ? null : Date.now() });
    renderParked();
  } else if (ev.type === "park.unparked") {
    store.parked.delete(ev.slot);
    renderParked();
  }
  if (replayed) return;
  switch (ev.type) {
    case "call.new":
      if (!store.calls.has(ev.call)) {
        store.calls.set(ev.call, { id: ev.call, address: ev.address, line: ev.line, state: "idle",
          privilege: ev.privilege, origin: ev.origin, reason: ev.reason, related_calls: [],
          caller: {}, called: {}, created_at: new Date().toISOString() });
      }
      refreshCall(ev.call);
      break;
    case "call.state": {
      const c = store.calls.get(ev.call);
      if (c) {
        c.state = ev.state;
        c.state_mode = ev.state_mode ?? null;
        c.state_seq = ev.seq;
        if (ended(c) && !c.ended_at) c.ended_at = Date.now();
        if (ev.privilege) c.privilege = ev.privilege;
      }
      refreshCall(ev.call);
      renderCalls();
      break;
    }
    case "call.info":
      refreshCall(ev.call);
      break;
    case "line.state":
      attempt("lines", loadLines);
      break;
    case "address.forwarding": {
      const st = store.addresses.get(ev.address) || { address: ev.address };
      st.forwarding = { rules: ev.rules, no_answer_rings: ev.no_answer_rings };
      delete st.error;
      store.addresses.set(ev.address, st);
      renderAddresses();
      break;
    }
    default:
      break;
  }
}

/**
 * Open the event stream. With `replayUpTo` set, the journal is replayed from
 * the start for the log and the parked slots, and events up to that seq are
 * not applied to calls (the snapshot already has them).
 */
function connect(since, replayUpTo) {
  const generation = ++store.wsGeneration;
  if (store.ws) store.ws.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot set an Authorization header on a WebSocket: the token
  // goes as `access_token`, over the same origin as the page.
  const url = `${scheme}://${location.host}/v1/events?since=${since}`
    + `&access_token=${encodeURIComponent(store.token)}`;
  const ws = new WebSocket(url);
  store.ws = ws;
  setStreamState("connecting…", "");
  ws.onopen = () => {
    if (generation !== store.wsGeneration) return;
    store.retry = 0;
    setStreamState("live", "live");
  };
  ws.onmessage = (m) => {
    if (generation !== store.wsGeneration) return;
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    if (ev.type === "stream.resync") {
      logEvent(ev, false);
      if (replayUpTo !== undefined) {
        // The journal no longer starts at 0: skip the replay.
        connect(replayUpTo);
      } else {
        resync();
      }
      return;
    }
    const replayed = replayUpTo !== undefined && ev.seq <= replayUpTo;
    if (typeof ev.seq === "number") store.seq = Math.max(store.seq, ev.seq);
    logEvent(ev, replayed);
    apply(ev, replayed);
  };
  ws.onclose = () => {
    if (generation !== store.wsGeneration || !store.token) return;
    setStreamState("reconnecting…", "down");
    const wait = Math.min(10000, 500 * 2 ** store.retry++);
    setTimeout(() => {
      if (generation === store.wsGeneration && store.token) connect(store.seq);
    }, wait);
  };
}

/** Take a fresh snapshot and follow the stream from it. */
async function resync() {
  const seq = await attempt("resync", refreshCalls);
  if (seq !== undefined) {
    store.seq = seq;
    connect(seq);
  }
}

// ---------------------------------------------------------------- call history

async function loadHistory(more) {
  const token = $("admin-token").value.trim();
  if (!token) {
    showStatus("The call history needs the admin token.");
    return;
  }
  sessionStorage.setItem(ADMIN_KEY, token);
  const q = new URLSearchParams({ limit: "50" });
  const address = $("history-address").value.trim();
  if (address) q.set("address", address);
  if (more && store.historyBefore) q.set("before", store.historyBefore);
  const body = $("history-body");
  try {
    const data = await api("GET", `/v1/admin/cdr?${q}`, undefined, token);
    const cdrs = data?.cdrs || [];
    const rows = cdrs.map(cdrRow);
    if (more) body.append(...rows); else body.replaceChildren(...rows);
    store.historyBefore = cdrs.length ? cdrs[cdrs.length - 1].id : null;
    $("history-more").hidden = cdrs.length < 50;
    $("history-empty").textContent = "No calls recorded.";
    $("history-empty").hidden = body.children.length > 0;
  } catch (e) {
    if (!more) body.replaceChildren();
    $("history-more").hidden = true;
    $("history-empty").hidden = false;
    $("history-empty").textContent = `The history could not be loaded: ${e.message}`;
    showStatus(`call history: ${e.message}`);
  }
}

function when(t) {
  if (!t) return h("span", { class: "muted" }, "—");
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : h("time", { datetime: t }, d.toLocaleString([], { hour12: false }));
}

function cdrRow(c) {
  const ops = c.operations || [];
  return h("tr", { dataset: { cdr: c.id } },
    h("td", {}, when(c.started_at)),
    h("td", {}, when(c.answered_at)),
    h("td", {}, when(c.ended_at)),
    h("td", { class: "num" }, typeof c.duration_ms === "number" ? formatDuration(c.duration_ms) : ""),
    h("td", {}, (c.parties || []).map((p) => `${p.address} (${p.role})`).join(", ")),
    h("td", {}, c.origin || ""),
    h("td", {}, c.end_reason || ""),
    h("td", {}, ops.length === 0 ? h("span", { class: "muted" }, "none")
      : h("details", {}, h("summary", {}, `${ops.length} operation${ops.length === 1 ? "" : "s"}`),
        h("ul", {}, ...ops.map((o) => h("li", {},
          `${o.op} on ${o.call || "?"} by ${o.app || "a phone"}: ${o.result}`))))),
    h("td", {}, qualityCell(c.quality || [])));
}

// One line per leg from tapir's RTCP figures: what tapir received from the
// phone, what it lost, the jitter, and the round trip when the phone
// answered tapir's reports.
function qualityCell(legs) {
  if (legs.length === 0) return h("span", { class: "muted" }, "no media");
  return h("ul", { class: "quality" }, ...legs.map((q) => {
    const rtt = typeof q.round_trip_ms === "number" ? `, round trip ${q.round_trip_ms} ms` : "";
    return h("li", {}, `${q.address}: ${q.packets_received} received, ${q.packets_lost} lost ` +
      `(${q.loss_percent}%), jitter ${q.jitter_ms} ms${rtt}`);
  }));
}

// ---------------------------------------------------------------- sign in

async function start() {
  route();
  if (!store.token) return;
  store.calls.clear();
  store.parked.clear();
  try {
    await loadLines();
    $("status").hidden = true;
    await loadAddresses();
    await loadWebhooks();
    await loadRecordings();
    const seq = await refreshCalls();
    store.seq = seq;
    // Replay the journal for the log and the parked slots, then go live.
    connect(0, seq);
  } catch (e) {
    if (e.status === 401) {
      signOut();
      showStatus(`sign in: ${e.message}`);
    } else {
      showStatus(`start: ${e.message}`);
    }
  }
}

function signOut() {
  store.token = null;
  store.wsGeneration++;
  if (store.ws) store.ws.close();
  store.ws = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ADMIN_KEY);
  $("admin-token").value = "";
  $("history-body").replaceChildren();
  $("webhooks-body").replaceChildren();
  $("recordings-body").replaceChildren();
  $("webhook-secret").replaceChildren();
  $("webhook-secret").hidden = true;
  store.calls.clear();
  store.parked.clear();
  store.selected = null;
  setStreamState("not connected", "");
  route();
}

function wire() {
  buildOpButtons();
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const token = $("login-token").value.trim();
    if (!token) return;
    try {
      await api("GET", "/v1/lines", undefined, token);
    } catch (err) {
      showStatus(`sign in: ${err.message}`);
      return;
    }
    store.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login-token").value = "";
    await start();
  });
  $("sign-out").addEventListener("click", signOut);
  $("open-all").addEventListener("click", openAll);
  $("clear-idle").addEventListener("click", clearIdle);
  $("clear-log").addEventListener("click", () => $("event-log").replaceChildren());
  $("recordings-refresh").addEventListener("click", () => attempt("recordings", loadRecordings));
  $("make-call-form").addEventListener("submit", (e) => {
    e.preventDefault();
    makeCall($("make-from").value, $("make-to").value.trim());
  });
  $("forward-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const address = $("fwd-address").value;
    const rules = [...(store.addresses.get(address)?.forwarding?.rules || [])];
    const to = $("fwd-to").value.trim();
    rules.push({ mode: $("fwd-mode").value, to: to || null });
    forward(address, rules);
  });
  $("fwd-clear").addEventListener("click", () => forward($("fwd-address").value, []));
  $("webhook-form").addEventListener("submit", (e) => {
    e.preventDefault();
    addWebhook();
  });
  $("history-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadHistory(false);
  });
  $("history-more").addEventListener("click", () => loadHistory(true));
  $("admin-token").value = sessionStorage.getItem(ADMIN_KEY) || "";
  window.addEventListener("hashchange", route);
  setInterval(tick, 1000);
  setInterval(pollLines, LINES_POLL_MS);
}

wire();
start();
