// The console's rules without a browser: which operation fits which call,
// the request each makes, and how errors, events and durations read.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  OPS, fits, missingInput, consultOf, primaryOf, swapCandidates, formatDuration,
  errorText, describeEvent, forwardingText, partyText, lampOf,
} from "../../crates/tapir-server/console/ops.js";

const op = (id) => {
  const o = OPS.find((x) => x.id === id);
  assert.ok(o, id);
  return o;
};

function call(id, state, extra = {}) {
  return { id, state, address: "1001", privilege: "owner", origin: "internal",
    related_calls: [], num_owners: 1, secure: false, ...extra };
}

/** The ids of the operations that fit `c` among `calls`. */
function fitting(c, calls = [c]) {
  return OPS.filter((o) => fits(o, c, calls)).map((o) => o.id).sort();
}

test("every operation has a unique id, a label and a request", () => {
  const ids = OPS.map((o) => o.id);
  assert.equal(new Set(ids).size, ids.length);
  for (const o of OPS) {
    assert.equal(typeof o.label, "string");
    assert.equal(typeof o.request, "function");
  }
});

test("a connected call can be held, not unheld or answered", () => {
  const c = call("call-1", "connected");
  assert.deepEqual(fitting(c), ["blind-transfer", "deallocate", "digits", "drop", "gather",
    "handoff", "handoff-media", "hold", "media-mode", "monitor-fax", "park", "privilege", "record",
    "record-pause", "record-resume", "record-stop", "secure", "setup-conference", "setup-transfer",
    "tone"]);
  assert.deepEqual(op("hold").request(c), { method: "POST", path: "/v1/calls/call-1/hold", body: {} });
});

test("an owner records a call with media; a secure call or a monitor cannot start one", () => {
  const c = call("call-1", "connected");
  assert.deepEqual(op("record").request(c, { channels: "mixed" }),
    { method: "POST", path: "/v1/calls/call-1/record", body: { action: "start", channels: "mixed" } });
  for (const [id, action] of [["record-pause", "pause"], ["record-resume", "resume"], ["record-stop", "stop"]]) {
    assert.deepEqual(op(id).request(c), { method: "POST", path: "/v1/calls/call-1/record", body: { action } });
  }
  assert.equal(missingInput(op("record"), { channels: "" }), "Record needs stereo or mixed.");
  assert.ok(!fitting(call("call-1", "connected", { secure: true })).includes("record"));
  assert.ok(fitting(call("call-1", "connected", { secure: true })).includes("record-stop"));
  assert.ok(!fitting(call("call-1", "connected", { privilege: "monitor" })).some((o) => o.startsWith("record")));
  assert.ok(!fitting(call("call-2", "offering")).includes("record"));
  assert.ok(fitting(call("call-1", "conferenced")).includes("record"));
});

test("a held call can be unheld and blind-transferred, not held again", () => {
  const c = call("call-1", "onhold");
  const f = fitting(c);
  assert.ok(f.includes("unhold"));
  assert.ok(f.includes("blind-transfer"));
  assert.ok(!f.includes("hold"));
  assert.ok(!f.includes("park"));
});

test("an offered call can be answered, accepted, redirected or picked up", () => {
  const c = call("call-2", "offering", { address: "1002" });
  assert.deepEqual(fitting(c), ["accept", "answer", "deallocate", "drop", "handoff",
    "handoff-media", "media-mode", "monitor-fax", "pickup", "privilege", "redirect", "secure"]);
  assert.deepEqual(op("pickup").request(c, { at: "1003" }),
    { method: "POST", path: "/v1/addresses/1003/pickup", body: { target: "1002" } });
  // linePickup naming the address and its group.
  assert.deepEqual(op("pickup").request(c, { at: "1003", group: "sales" }),
    { method: "POST", path: "/v1/addresses/1003/pickup", body: { target: "1002", group: "sales" } });
  assert.deepEqual(op("redirect").request(c, { to: "1004" }).body, { to: "1004" });
  assert.ok(!fitting(call("call-2", "accepted")).includes("accept"));
});

test("an idle call can be deallocated, handed off or given a media mode, nothing else", () => {
  // lineHandoff: any call state, idle included; lineSetMediaMode: "The
  // call state of hCall can be any state."
  assert.deepEqual(fitting(call("call-3", "idle")),
    ["deallocate", "handoff", "handoff-media", "media-mode", "privilege"]);
  assert.deepEqual(op("deallocate").request(call("call-3", "idle")),
    { method: "DELETE", path: "/v1/calls/call-3" });
  // TAPI 2.0 and later: the sole owner of a live call may let its handle go
  // too (the call goes on, ownerless), as may a co-owner.
  assert.ok(fitting(call("call-3", "connected")).includes("deallocate"));
  assert.ok(fitting(call("call-3", "connected", { num_owners: 2 })).includes("deallocate"));
});

test("a monitor controls nothing but its own handle (and what it monitors)", () => {
  const c = call("call-4", "connected", { privilege: "monitor" });
  assert.deepEqual(fitting(c), ["deallocate", "monitor-fax", "privilege"]);
  assert.deepEqual(op("privilege").request(c).body, { privilege: "owner" });
});

test("handoff by media mode (unknown included) and set media mode send the mode", () => {
  const c = call("call-5", "connected");
  assert.deepEqual(op("handoff-media").request(c, { media: "unknown" }),
    { method: "POST", path: "/v1/calls/call-5/handoff", body: { media_mode: "unknown" } });
  assert.deepEqual(op("media-mode").request(c, { media: "g3fax" }),
    { method: "POST", path: "/v1/calls/call-5/media-mode", body: { media_mode: "g3fax" } });
  assert.equal(missingInput(op("media-mode"), { media: "" }), "Set media mode needs a media mode.");
  assert.ok(!fitting(call("call-5", "connected", { privilege: "monitor" })).includes("media-mode"));
});

test("TAPI's media operations: gather and tone for owners, monitoring for all", () => {
  const c = call("call-8", "connected");
  assert.deepEqual(op("gather").request(c),
    { method: "POST", path: "/v1/calls/call-8/gather",
      body: { terminators: "#", first_timeout_ms: 10000, inter_timeout_ms: 5000 } });
  assert.deepEqual(op("tone").request(c, { tone: "billing" }),
    { method: "POST", path: "/v1/calls/call-8/tone", body: { tone: "billing" } });
  assert.equal(missingInput(op("tone"), { tone: "" }), "Play tone needs a tone.");
  assert.deepEqual(op("monitor-fax").request(c),
    { method: "PUT", path: "/v1/calls/call-8/monitor",
      body: { digits: true, media_modes: ["g3fax"] } });
  const held = call("call-8", "onhold");
  assert.ok(!fitting(held).includes("gather") && !fitting(held).includes("tone"));
  assert.equal(describeEvent({ type: "digits.gathered", call: "call-8", digits: "12#",
    reason: "terminator" }), "call-8 gathered 12# (terminator)");
  assert.equal(describeEvent({ type: "tone.detected", call: "call-8", frequencies: [1100],
    duration_ms: 500 }), "call-8 tone 1100 Hz for 500 ms");
  assert.equal(describeEvent({ type: "media.detected", call: "call-8", media_mode: "g3fax" }),
    "call-8 media detected: g3fax");
});

test("a call waiting where the app talks can be picked up, holding the talking call", () => {
  const talking = call("call-6", "connected", { address: "1001" });
  const waiting = call("call-7", "offering", { address: "1001", privilege: "monitor" });
  assert.ok(fitting(waiting, [talking, waiting]).includes("pickup-waiting"));
  // linePickup naming neither address nor group: `{}` at the address.
  assert.deepEqual(op("pickup-waiting").request(waiting),
    { method: "POST", path: "/v1/addresses/1001/pickup", body: {} });
  // Nothing waits without a talking call at the same address.
  assert.ok(!fitting(waiting, [waiting]).includes("pickup-waiting"));
  const elsewhere = call("call-8", "connected", { address: "1002" });
  assert.ok(!fitting(waiting, [elsewhere, waiting]).includes("pickup-waiting"));
});

test("a partially dialled call (lineMakeCall to `…;`) is dialled on, like one at dial tone", () => {
  for (const s of ["dialtone", "dialing"]) {
    const c = call("call-9", s);
    assert.ok(fitting(c).includes("dial"), s);
    assert.deepEqual(op("dial").request(c, { digits: "02" }),
      { method: "POST", path: "/v1/calls/call-9/dial", body: { digits: "02" } });
  }
  assert.ok(!fitting(call("call-9", "proceeding")).includes("dial"));
});

test("busy and ringback calls can ask for call completion", () => {
  for (const s of ["busy", "ringback"]) assert.ok(fitting(call("c", s)).includes("complete"), s);
  assert.ok(!fitting(call("c", "connected")).includes("complete"));
  assert.deepEqual(op("complete").request(call("call-5", "busy"), { completion: "callback" }).body,
    { mode: "callback" });
});

test("a transfer in progress: complete on the primary, finish on the consultation", () => {
  const primary = call("call-1", "onholdpendtransfer", { related_calls: ["call-2"] });
  const consult = call("call-2", "ringback", { related_calls: ["call-1"] });
  const calls = [primary, consult];
  assert.equal(consultOf(primary, calls), consult);
  assert.equal(primaryOf(consult, calls), primary);
  assert.ok(fitting(primary, calls).includes("complete-transfer"));
  assert.ok(fitting(primary, calls).includes("unhold"));
  assert.ok(fitting(consult, calls).includes("finish"));
  assert.deepEqual(op("complete-transfer").request(primary, { mode: "transfer" }, calls),
    { method: "POST", path: "/v1/calls/call-1/complete-transfer",
      body: { consult_call: "call-2", mode: "transfer" } });
  // Without its consultation call there is nothing to complete.
  assert.ok(!fitting(primary, [primary]).includes("complete-transfer"));
});

test("a conference: prepare an addition, add the consultation, remove a member", () => {
  const conf = call("call-9", "onholdpendconf", { origin: "conference", related_calls: ["call-1"] });
  const member = call("call-1", "conferenced", { related_calls: ["call-9"] });
  const consult = call("call-3", "connected", { related_calls: ["call-9"] });
  const calls = [conf, member, consult];
  assert.equal(consultOf(conf, calls), consult);
  assert.ok(fitting(conf, calls).includes("add"));
  assert.deepEqual(op("add").request(conf, {}, calls).body, { consult_call: "call-3" });
  assert.ok(fitting(member, calls).includes("remove-from-conference"));
  const talking = call("call-9", "connected", { origin: "conference", related_calls: ["call-1"] });
  assert.ok(fitting(talking, [talking, member]).includes("prepare-add"));
  assert.ok(!fitting(talking, [talking, member]).includes("setup-conference"));
});

test("swap hold pairs a talking call with a held one on the same address", () => {
  const a = call("call-1", "connected");
  const b = call("call-2", "onhold");
  const elsewhere = call("call-3", "onhold", { address: "1002" });
  assert.deepEqual(swapCandidates(a, [a, b, elsewhere]), [b]);
  assert.ok(fitting(a, [a, b]).includes("swap-hold"));
  assert.ok(!fitting(a, [a, elsewhere]).includes("swap-hold"));
  assert.deepEqual(op("swap-hold").request(a, { with: "call-2" }).body, { with: "call-2" });
});

test("operations say which input they lack", () => {
  assert.equal(missingInput(op("blind-transfer"), { to: " " }), "Blind transfer needs a destination.");
  assert.equal(missingInput(op("blind-transfer"), { to: "1003" }), null);
  assert.equal(missingInput(op("park"), {}), null, "the park slot is optional");
  assert.deepEqual(op("park").request(call("call-1", "connected"), { slot: "" }).body, {});
  assert.deepEqual(op("park").request(call("call-1", "connected"), { slot: "7002" }).body, { to: "7002" });
  assert.match(missingInput(op("digits"), { digits: "" }), /digits/);
});

test("ids in paths are encoded", () => {
  assert.equal(op("hold").request(call("a/b?c", "connected")).path, "/v1/calls/a%2Fb%3Fc/hold");
});

test("errors read as the API's code and message", () => {
  assert.equal(errorText(409, { error: { code: "invalcallstate", message: "call-1 is idle" } }),
    "invalcallstate: call-1 is idle");
  assert.equal(errorText(502, null, "Bad Gateway"), "http 502: Bad Gateway");
  assert.equal(errorText(500, { unexpected: true }), "http 500: the server gave no error detail");
});

test("durations, parties, forwarding and events read well", () => {
  assert.equal(formatDuration(0), "0:00");
  assert.equal(formatDuration(61_999), "1:01");
  assert.equal(formatDuration(3_725_000), "1:02:05");
  assert.equal(formatDuration(-5), "0:00");
  assert.equal(partyText({ address: "1001", name: "Alice" }), "Alice <1001>");
  assert.equal(partyText({ address: "1001" }), "1001");
  assert.equal(partyText(null), "");
  assert.equal(forwardingText([{ mode: "busy", to: "1003" }, { mode: "noanswer", to: null }]),
    "busy → 1003; noanswer → do not disturb");
  assert.equal(describeEvent({ seq: 4, type: "call.state", call: "call-1", state: "onhold" }),
    "call-1 → onhold");
  assert.equal(describeEvent({ type: "call.state", call: "call-1", state: "connected", state_mode: "active" }),
    "call-1 → connected (active)");
  assert.equal(describeEvent({ type: "park.parked", call: "call-2", slot: "7001" }), "call-2 parked at 7001");
  assert.equal(describeEvent({ type: "reply", request: "req-3", ok: false,
    error: { code: "invalcallstate", message: "no" } }), "req-3 failed: invalcallstate: no");
  assert.match(describeEvent({ type: "something.new", x: 1 }), /something\.new/);
});

test("an address's lamp flashes while a call rings, is lit while busy, and shows DND and forwarding", () => {
  const at = (state, address = "1002") => call(`c-${state}`, state, { address });
  assert.deepEqual(lampOf("1002", [], []), { lamp: "off", text: "free" });
  assert.equal(lampOf("1002", [at("offering")], []).lamp, "ringing");
  assert.equal(lampOf("1002", [at("accepted")], []).lamp, "ringing");
  assert.equal(lampOf("1002", [at("connected")], []).lamp, "busy");
  assert.equal(lampOf("1002", [at("onhold"), at("offering")], []).lamp, "ringing");
  assert.equal(lampOf("1002", [at("idle"), at("disconnected")], []).lamp, "off");
  assert.equal(lampOf("1002", [at("connected", "1001")], []).lamp, "off", "another address's call");
  const dnd = [{ mode: "unconditional" }];
  assert.deepEqual(lampOf("1002", [], dnd), { lamp: "dnd", text: "do not disturb" });
  assert.equal(lampOf("1002", [at("connected")], dnd).lamp, "busy", "a call outshines DND");
  assert.deepEqual(lampOf("1002", [], [{ mode: "unconditionalinternal", to: "1003" }]),
    { lamp: "forwarded", text: "forwarded → 1003" });
  assert.equal(lampOf("1002", [], [{ mode: "busy", to: "1003" }]).lamp, "off", "busy rules do not show");
  assert.equal(lampOf("1002", [], [{ mode: "unconditionalexternal" }]).lamp, "off", "external only");
});
