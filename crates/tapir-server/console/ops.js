// The console's rules, free of the DOM so Node can test them
// (tests/console/ops.test.mjs): which TAPI operation fits a call in which
// state, the request each one makes, and how events, errors and durations
// are written for a person.

/** Call states in which the call still has a device or a party. */
const LIVE = new Set([
  "offering", "accepted", "dialtone", "dialing", "proceeding", "ringback",
  "busy", "specialinfo", "connected", "onhold", "conferenced", "onholdpendconf",
  "onholdpendtransfer",
]);
/** States of a call whose media can be recorded (it has its audio). */
const RECORDABLE = new Set(["connected", "conferenced", "onhold"]);

const HELD = new Set(["onhold", "onholdpendtransfer", "onholdpendconf"]);

/** Forwarding modes of `PUT /v1/addresses/{a}/forwarding`. */
export const FORWARD_MODES = [
  "unconditional", "unconditionalinternal", "unconditionalexternal",
  "busy", "busyinternal", "busyexternal",
  "noanswer", "noanswerinternal", "noanswerexternal",
  "busynoanswer", "busynoanswerinternal", "busynoanswerexternal",
];

/**
 * Media modes of a call (`LINEMEDIAMODE_`), for handoff and set media mode;
 * a handoff to `unknown` reaches the app that handles unknown media.
 */
export const MEDIA_MODES = [
  "interactivevoice", "automatedvoice", "datamodem", "g3fax", "tdd", "video", "unknown",
];

/** Tones of `lineGenerateTone` the console offers. */
export const TONES = ["beep", "billing", "busy", "ringback"];

/** Modes of call completion (`lineCompleteCall`). */
export const COMPLETION_MODES = ["campon", "callback", "intrude", "message"];

function isOwner(call) {
  return call.privilege === "owner";
}

function isConference(call) {
  return call.origin === "conference";
}

/** The calls `call` names as related, as objects. */
function related(call, calls) {
  const ids = new Set(call.related_calls || []);
  return calls.filter((c) => ids.has(c.id));
}

/** The consultation call of a held primary (transfer or conference). */
export function consultOf(call, calls) {
  if (isConference(call)) {
    // A conference's pending addition: a call related to it that is not
    // (yet) a member.
    return calls.find((c) => c.id !== call.id && c.state !== "conferenced"
      && (c.related_calls || []).includes(call.id)
      && ["connected", "onhold", "proceeding", "ringback"].includes(c.state));
  }
  return related(call, calls).find((c) =>
    ["connected", "ringback", "busy", "proceeding", "dialtone", "dialing"].includes(c.state));
}

/** The held primary a consultation call belongs to. */
export function primaryOf(call, calls) {
  return related(call, calls).find((c) => c.state === "onholdpendtransfer"
    || c.state === "onholdpendconf" || (isConference(c) && c.state === "onholdpendconf"));
}

/** Calls on the same address that `call` can swap with (swap-hold). */
export function swapCandidates(call, calls) {
  if (call.state !== "connected") return [];
  return calls.filter((c) => c.id !== call.id && c.address === call.address
    && isOwner(c) && HELD.has(c.state));
}

/**
 * Every operation of the console. `fits(call, calls)` says whether the
 * selected call is in a state where TAPI allows it; `needs` names the
 * inputs it reads; `request(call, input, calls)` gives method, path, body.
 */
export const OPS = [
  // --- the call itself
  { id: "answer", label: "Answer", group: "Call",
    fits: (c) => isOwner(c) && ["offering", "accepted"].includes(c.state),
    request: (c) => post(c, "answer") },
  { id: "accept", label: "Accept", group: "Call",
    fits: (c) => isOwner(c) && c.state === "offering",
    request: (c) => post(c, "accept") },
  { id: "redirect", label: "Redirect", group: "Call", needs: ["to"],
    fits: (c) => isOwner(c) && ["offering", "accepted"].includes(c.state),
    request: (c, i) => post(c, "redirect", { to: i.to }) },
  { id: "dial", label: "Dial", group: "Call", needs: ["digits"],
    fits: (c) => isOwner(c) && ["dialtone", "dialing"].includes(c.state),
    request: (c, i) => post(c, "dial", { digits: i.digits }) },
  { id: "drop", label: "Drop", group: "Call",
    fits: (c) => isOwner(c) && c.state !== "idle",
    request: (c) => post(c, "drop") },
  { id: "deallocate", label: "Deallocate", group: "Call",
    // TAPI 2.0 and later: any handle may be let go, the sole owner's of a
    // live call included (the call goes on, ownerless).
    fits: () => true,
    request: (c) => ({ method: "DELETE", path: `/v1/calls/${enc(c.id)}` }) },
  // --- hold
  { id: "hold", label: "Hold", group: "Hold",
    fits: (c) => isOwner(c) && c.state === "connected",
    request: (c) => post(c, "hold") },
  { id: "unhold", label: "Unhold", group: "Hold",
    fits: (c) => isOwner(c) && HELD.has(c.state),
    request: (c) => post(c, "unhold") },
  { id: "swap-hold", label: "Swap hold", group: "Hold", needs: ["with"],
    fits: (c, calls) => isOwner(c) && swapCandidates(c, calls).length > 0,
    request: (c, i) => post(c, "swap-hold", { with: i.with }) },
  // --- transfer
  { id: "blind-transfer", label: "Blind transfer", group: "Transfer", needs: ["to"],
    fits: (c) => isOwner(c) && !isConference(c) && ["connected", "onhold"].includes(c.state),
    request: (c, i) => post(c, "blind-transfer", { to: i.to }) },
  { id: "setup-transfer", label: "Set up transfer", group: "Transfer",
    fits: (c) => isOwner(c) && !isConference(c) && c.state === "connected",
    request: (c) => post(c, "setup-transfer") },
  { id: "complete-transfer", label: "Complete transfer", group: "Transfer", needs: ["mode"],
    fits: (c, calls) => isOwner(c) && c.state === "onholdpendtransfer"
      && consultOf(c, calls) !== undefined,
    request: (c, i, calls) => post(c, "complete-transfer",
      { consult_call: consultOf(c, calls)?.id, mode: i.mode }) },
  { id: "finish", label: "Finish", group: "Transfer", needs: ["mode"],
    fits: (c, calls) => isOwner(c) && primaryOf(c, calls) !== undefined
      && ["connected", "ringback", "busy", "proceeding", "onhold"].includes(c.state),
    request: (c, i) => post(c, "finish", { mode: i.mode }) },
  // --- conference
  { id: "setup-conference", label: "Set up conference", group: "Conference",
    fits: (c) => isOwner(c) && !isConference(c) && c.state === "connected",
    request: (c) => post(c, "setup-conference") },
  { id: "prepare-add", label: "Prepare add", group: "Conference",
    fits: (c) => isOwner(c) && isConference(c) && c.state === "connected",
    request: (c) => post(c, "prepare-add") },
  { id: "add", label: "Add to conference", group: "Conference",
    fits: (c, calls) => isOwner(c) && isConference(c)
      && ["onholdpendconf", "connected"].includes(c.state) && consultOf(c, calls) !== undefined,
    request: (c, i, calls) => post(c, "add", { consult_call: consultOf(c, calls)?.id }) },
  { id: "remove-from-conference", label: "Remove from conference", group: "Conference",
    fits: (c) => isOwner(c) && c.state === "conferenced",
    request: (c) => post(c, "remove-from-conference") },
  // --- features
  { id: "park", label: "Park", group: "Features", needs: ["slot?"],
    fits: (c) => isOwner(c) && c.state === "connected",
    request: (c, i) => post(c, "park", i.slot ? { to: i.slot } : {}) },
  { id: "pickup", label: "Pick up", group: "Features", needs: ["at", "group?"],
    // With a group: the address must be in it (linePickup naming both).
    fits: (c) => c.state === "offering",
    request: (c, i) => ({ method: "POST", path: `/v1/addresses/${enc(i.at)}/pickup`,
      body: i.group ? { target: c.address, group: i.group } : { target: c.address } }) },
  { id: "pickup-waiting", label: "Pick up waiting call", group: "Features",
    // Call-waiting pickup (linePickup naming neither): the call waiting at
    // an address where this app talks; the talking call goes on hold.
    fits: (c, calls) => c.state === "offering" && calls.some((o) => o.id !== c.id
      && o.address === c.address && isOwner(o) && o.state === "connected"),
    request: (c) => ({ method: "POST", path: `/v1/addresses/${enc(c.address)}/pickup`, body: {} }) },
  { id: "complete", label: "Complete call", group: "Features", needs: ["completion"],
    fits: (c) => isOwner(c) && ["busy", "ringback"].includes(c.state),
    request: (c, i) => post(c, "complete", { mode: i.completion }) },
  { id: "digits", label: "Send digits", group: "Features", needs: ["digits"],
    fits: (c) => isOwner(c) && c.state === "connected",
    request: (c, i) => post(c, "digits", { digits: i.digits }) },
  // TAPI's media operations: gathering and tones need an owner of a
  // connected call; monitoring is for owners and monitors alike.
  { id: "gather", label: "Gather digits (# ends)", group: "Media",
    fits: (c) => isOwner(c) && c.state === "connected",
    request: (c) => post(c, "gather",
      { terminators: "#", first_timeout_ms: 10000, inter_timeout_ms: 5000 }) },
  { id: "tone", label: "Play tone", group: "Media", needs: ["tone"],
    fits: (c) => isOwner(c) && c.state === "connected",
    request: (c, i) => post(c, "tone", { tone: i.tone }) },
  { id: "monitor-fax", label: "Detect fax", group: "Media",
    fits: (c) => LIVE.has(c.state),
    request: (c) => ({ method: "PUT", path: `/v1/calls/${enc(c.id)}/monitor`,
      body: { digits: true, media_modes: ["g3fax"] } }) },
  { id: "secure", label: "Secure", group: "Features",
    fits: (c) => isOwner(c) && LIVE.has(c.state) && !c.secure,
    request: (c) => post(c, "secure") },
  // --- recording (a WAV file per call; the list is under Recordings)
  { id: "record", label: "Record", group: "Recording", needs: ["channels"],
    fits: (c) => isOwner(c) && RECORDABLE.has(c.state) && !c.secure,
    request: (c, i) => post(c, "record", { action: "start", channels: i.channels }) },
  { id: "record-pause", label: "Pause recording", group: "Recording",
    fits: (c) => isOwner(c) && RECORDABLE.has(c.state),
    request: (c) => post(c, "record", { action: "pause" }) },
  { id: "record-resume", label: "Resume recording", group: "Recording",
    fits: (c) => isOwner(c) && RECORDABLE.has(c.state),
    request: (c) => post(c, "record", { action: "resume" }) },
  { id: "record-stop", label: "Stop recording", group: "Recording",
    fits: (c) => isOwner(c) && RECORDABLE.has(c.state),
    request: (c) => post(c, "record", { action: "stop" }) },
  // lineHandoff and lineSetMediaMode: any call state, idle included.
  { id: "handoff", label: "Hand off", group: "Features", needs: ["app"],
    fits: (c) => isOwner(c),
    request: (c, i) => post(c, "handoff", { app: i.app }) },
  { id: "handoff-media", label: "Hand off by media mode", group: "Features", needs: ["media"],
    fits: (c) => isOwner(c),
    request: (c, i) => post(c, "handoff", { media_mode: i.media }) },
  { id: "media-mode", label: "Set media mode", group: "Features", needs: ["media"],
    fits: (c) => isOwner(c),
    request: (c, i) => post(c, "media-mode", { media_mode: i.media }) },
  { id: "privilege", label: "Toggle privilege", group: "Features",
    fits: () => true,
    request: (c) => post(c, "privilege",
      { privilege: isOwner(c) ? "monitor" : "owner" }) },
];

/** The groups of `OPS`, in order. */
export const GROUPS = [...new Set(OPS.map((o) => o.group))];

/** Whether `op` fits `call` (false without a call). */
export function fits(op, call, calls) {
  return Boolean(call) && op.fits(call, calls || []);
}

/**
 * The input an operation lacks, as a sentence, or null. Names ending in
 * `?` are optional.
 */
export function missingInput(op, input) {
  const names = { to: "a destination", digits: "digits", with: "a held call to swap with",
    mode: "a transfer mode", at: "the address that picks up", completion: "a completion mode",
    app: "an application name", media: "a media mode",
    channels: "stereo or mixed", tone: "a tone" };
  for (const n of op.needs || []) {
    if (n.endsWith("?")) continue;
    if (!input[n] || !String(input[n]).trim()) return `${op.label} needs ${names[n] || n}.`;
  }
  return null;
}

function enc(s) {
  return encodeURIComponent(s);
}

function post(call, op, body) {
  return { method: "POST", path: `/v1/calls/${enc(call.id)}/${op}`, body: body || {} };
}

/** `h:mm:ss` or `m:ss` for a duration in milliseconds (never negative). */
export function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** An API error as the console shows it: `code: message`. */
export function errorText(status, body, fallback) {
  const e = body && typeof body === "object" ? body.error : undefined;
  if (e && typeof e.code === "string") {
    return `${e.code}: ${typeof e.message === "string" ? e.message : ""}`.trim();
  }
  return `http ${status}: ${fallback || "the server gave no error detail"}`;
}

/** A party as text: `Alice <1001>` or `1001`. */
export function partyText(p) {
  if (!p || !p.address) return "";
  return p.name ? `${p.name} <${p.address}>` : p.address;
}

/** One line of the event log for an event of the stream. */
export function describeEvent(ev) {
  switch (ev.type) {
    case "call.new":
      return `${ev.call} new on ${ev.address} (${ev.origin}, ${ev.reason}) as ${ev.privilege}`;
    case "call.state": {
      const mode = ev.state_mode ? ` (${ev.state_mode})` : "";
      const conf = ev.conference ? ` in ${ev.conference}` : "";
      const priv = ev.privilege ? `, now ${ev.privilege}` : "";
      return `${ev.call} → ${ev.state}${mode}${conf}${priv}`;
    }
    case "call.info":
      return `${ev.call} info: ${(ev.changed || []).join(", ")}`;
    case "reply":
      return ev.ok ? `${ev.request} ok`
        : `${ev.request} failed: ${ev.error ? `${ev.error.code}: ${ev.error.message}` : "?"}`;
    case "line.state":
      return `${ev.line} ${ev.state}`;
    case "address.forwarding":
      return `${ev.address} forwarding: ${forwardingText(ev.rules) || "none"}`;
    case "park.parked":
      return `${ev.call} parked at ${ev.slot}`;
    case "park.unparked":
      return `${ev.call} left ${ev.slot}${ev.by ? ` (retrieved by ${ev.by})` : ""}`;
    case "completion.done":
      return `${ev.completion} ${ev.mode} ${ev.from} → ${ev.to} ${ev.completed ? "done" : "expired"}`;
    case "digits.received":
      return `${ev.call} digits ${ev.digits}`;
    case "digits.generated":
      return `${ev.call} digits sent`;
    case "digits.gathered":
      return `${ev.call} gathered ${ev.digits || "nothing"} (${ev.reason})`;
    case "tone.detected":
      return `${ev.call} tone ${(ev.frequencies || []).join("+")} Hz for ${ev.duration_ms} ms`;
    case "media.detected":
      return `${ev.call} media detected: ${ev.media_mode}`;
    case "stream.resync":
      return `resync: ${ev.message || ""}`;
    default:
      return JSON.stringify(ev);
  }
}

/** Forwarding rules as text: `unconditional → 1003; busy → DND`. */
export function forwardingText(rules) {
  return (rules || []).map((r) => {
    const who = r.caller ? ` from ${r.caller}` : "";
    return `${r.mode}${who} → ${r.to || "do not disturb"}`;
  }).join("; ");
}

/** Call states in which an address's lamp flashes: a call rings there. */
const RINGING_STATES = new Set(["offering", "accepted"]);
/** States of a call that is over as far as a lamp is concerned. */
const LAMP_OFF_STATES = new Set(["idle", "disconnected"]);

/**
 * An address's busy lamp, as a desk phone's BLF key shows it (the same rule
 * as the SIP dialog package tapir NOTIFYs): `ringing` while a call rings at
 * the address, `busy` while it has any other live call, else `dnd` or
 * `forwarded` while an unconditional rule for every caller or for callers
 * on this switch holds (without or with a destination), else `off`.
 * Returns `{ lamp, text }`.
 */
export function lampOf(address, calls, rules) {
  let ringing = false;
  let busy = false;
  for (const c of calls || []) {
    if (c.address !== address || LAMP_OFF_STATES.has(c.state)) continue;
    if (RINGING_STATES.has(c.state)) ringing = true;
    else busy = true;
  }
  if (ringing) return { lamp: "ringing", text: "ringing" };
  if (busy) return { lamp: "busy", text: "busy" };
  const standing = (rules || []).filter((r) =>
    r.mode === "unconditional" || r.mode === "unconditionalinternal");
  if (standing.some((r) => !r.to)) return { lamp: "dnd", text: "do not disturb" };
  const fwd = standing.find((r) => r.to);
  if (fwd) return { lamp: "forwarded", text: `forwarded → ${fwd.to}` };
  return { lamp: "off", text: "free" };
}
