// The web console in a real browser: headless Chromium (Debian's) driven by
// Playwright opens /console of a real `tapir serve`, signs in with an app
// token, opens the lines, and controls a call between two real pjsua2
// phones: clicking Hold makes the far phone receive a hold re-INVITE and the
// page show `onhold`; Unhold brings it back; Park lists the call in a slot
// (also after a reload) and Unpark brings it to a phone again; a
// consultation transfer is set up, dialled and completed with the buttons;
// forwarding is set and cleared, for one address and for every address of
// a line at once (lineForward with bAllAddresses); a call's media mode is
// shown and set (lineSetMediaMode); the call history shows the CDRs or the
// API's error. axe-core checks WCAG 2.1 AA on each view. Screenshots are
// kept in target/test-artifacts/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import {
  Tapir, Phone, TOKEN, ADMIN_TOKEN, ARTIFACTS, chromiumPath, CHROMIUM_ARGS,
  accessibilityViolations,
} from "./harness.mjs";

const WAIT = 10000;
let tapir;
let phones = [];
let context;
let page;
let profile;
const pageErrors = [];

before(async () => {
  tapir = await Tapir.start();
  profile = mkdtempSync(join(tmpdir(), "tapir-console-chromium-"));
  // A fresh profile every run (launchPersistentContext owns --user-data-dir).
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 },
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  // Failed requests (the 401 and 403 this test provokes) log "Failed to load
  // resource"; anything else logged as an error is a fault of the page.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(m.text());
  });
});

after(async () => {
  await context?.close();
  await Promise.all(phones.map((p) => p.stop()));
  tapir?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** The page's row of the call at `address`. */
function callRow(address) {
  return page.locator("#calls-body tr").filter({ has: page.locator("td", { hasText: new RegExp(`^${address}$`) }) });
}

test("the console signs in, shows API errors, and holds a call between two phones", async () => {
  const resp = await page.goto(`${tapir.base}/console`);
  assert.equal(resp.status(), 200);
  assert.equal(new URL(page.url()).pathname, "/console/");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.deepEqual(await accessibilityViolations(page), [], "the sign-in page meets WCAG 2.1 AA (axe)");

  // A wrong token: the API's 401 code and sentence are shown.
  const wrong = await tapir.http("GET", "/v1/lines", undefined, "not-a-token");
  assert.equal(wrong.status, 401);
  await page.getByLabel("App token").fill("not-a-token");
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("alert").filter({ hasText: wrong.body.error.code }).waitFor();
  assert.match(await page.getByRole("alert").innerText(),
    new RegExp(`${wrong.body.error.code}: ${escape(wrong.body.error.message)}`));

  await page.getByLabel("App token").fill(TOKEN);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("heading", { name: "Lines" }).waitFor();
  // The event stream authenticates (the token rides as access_token).
  await page.locator("#stream-state", { hasText: "live" }).waitFor();
  const lineRows = page.locator("#lines-body tr");
  assert.equal(await lineRows.count(), 3);

  await page.getByRole("button", { name: "Open all lines" }).click();
  for (const address of ["1001", "1002", "1003"]) {
    await page.getByRole("button", { name: `Close line ${address}` }).waitFor();
  }
  const lines = (await tapir.http("GET", "/v1/lines")).body;
  for (const l of Array.isArray(lines) ? lines : lines.lines) {
    assert.ok(Array.isArray(l.open) && l.open.includes("owner"), `${l.address} open as owner`);
  }
  await page.locator("#event-log li[data-type='line.state']").first().waitFor();

  // Two real phones register and 1001 calls 1002, who answers.
  const a = await Phone.start("1001", tapir.sipPort);
  const b = await Phone.start("1002", tapir.sipPort);
  phones = [a, b];
  assert.equal((await a.register()).code, 200);
  assert.equal((await b.register()).code, 200);
  // Registration is read again every few seconds: the page ends up saying
  // what the API says.
  const listed = (await tapir.http("GET", "/v1/lines")).body;
  const line1001 = (Array.isArray(listed) ? listed : listed.lines).find((l) => l.address === "1001");
  await page.locator("#lines-body tr", { hasText: "1001" })
    .locator(".reg", { hasText: new RegExp(`^${line1001.registration}`) }).waitFor();
  a.send({ cmd: "call", to: "1002" });
  await b.waitFor((e) => e.event === "incoming");
  await callRow("1002").locator("[data-field=state]", { hasText: "offering" }).waitFor();
  // The address list's busy lamps, live: 1002 rings, 1001 is busy.
  const lamp = (address, state) =>
    page.locator(`#addresses-body tr[data-address="${address}"] .lamp[data-lamp="${state}"]`);
  await lamp("1002", "ringing").waitFor();
  await lamp("1001", "busy").waitFor();
  b.send({ cmd: "answer" });
  await a.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  await b.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  await callRow("1001").locator("[data-field=state]", { hasText: /^connected/ }).waitFor();
  await callRow("1002").locator("[data-field=state]", { hasText: /^connected/ }).waitFor();
  await lamp("1002", "busy").waitFor();
  assert.equal(await lamp("1003", "off").count(), 1, "an address without calls is dark");

  // Select 1001's call: Hold fits, Unhold does not.
  const row = callRow("1001");
  const callId = await row.getAttribute("data-call");
  await row.getByRole("button", { name: callId }).click();
  await page.locator("#selected-call", { hasText: callId }).waitFor();
  const hold = page.getByRole("button", { name: "Hold", exact: true });
  const unhold = page.getByRole("button", { name: "Unhold", exact: true });
  assert.equal(await hold.isEnabled(), true, "Hold fits a connected call");
  assert.equal(await unhold.isEnabled(), false, "Unhold does not fit a connected call");
  assert.equal(await page.getByRole("button", { name: "Answer", exact: true }).isEnabled(), false);

  // Hold: the far phone gets a hold re-INVITE; the page shows onhold.
  await hold.click();
  const held = await b.waitFor((e) => e.event === "media" && e.status === "remote_hold");
  assert.equal(held.status, "remote_hold");
  await row.locator("[data-field=state]", { hasText: "onhold" }).waitFor();
  await page.locator("#selected-state", { hasText: "onhold" }).waitFor();
  const api = (await tapir.http("GET", `/v1/calls/${callId}`)).body;
  assert.equal(api.state, "onhold", "the switch agrees with the page");
  await page.locator("#event-log li[data-type='call.state']", { hasText: `${callId} → onhold` }).waitFor();
  assert.equal(await hold.isEnabled(), false);
  assert.equal(await unhold.isEnabled(), true);

  assert.deepEqual(await accessibilityViolations(page), [], "the switchboard meets WCAG 2.1 AA (axe)");

  mkdirSync(ARTIFACTS, { recursive: true });
  const shot = join(ARTIFACTS, "console-hold.png");
  await page.screenshot({ path: shot, fullPage: true });

  // Unhold: the phone is offered media again and the call is connected.
  await unhold.click();
  await b.waitFor((e) => e.event === "media" && e.status === "active");
  await row.locator("[data-field=state]", { hasText: /^connected/ }).waitFor();
  await page.locator("#event-log li[data-type='call.state']", { hasText: `${callId} → connected` }).first().waitFor();
  assert.equal((await tapir.http("GET", `/v1/calls/${callId}`)).body.state, "connected");

  // The log has the call's whole story, newest first.
  const log = await page.locator("#event-log li").allInnerTexts();
  const joined = log.join("\n");
  assert.match(joined, new RegExp(`${callId} new on 1001`));
  assert.ok(log.findIndex((l) => l.includes(`${callId} → connected`))
    < log.findIndex((l) => l.includes(`${callId} → onhold`)), "unhold is logged after hold");

  assert.deepEqual(pageErrors, [], "no script errors");
  console.log(`screenshot: ${shot}`);
});

test("a call parked from the page is listed, survives a reload, and is unparked", async () => {
  const [a, b] = phones;
  const row = callRow("1001").filter({ has: page.locator("[data-field=state]", { hasText: /^connected/ }) });
  const callId = await row.getAttribute("data-call");
  const far = await callRow("1002").getAttribute("data-call");
  await row.getByRole("button", { name: callId }).click();
  // A slot outside the park range: the API's error, as code and sentence.
  await page.getByLabel("Park slot").fill("9999");
  await page.getByRole("button", { name: "Park", exact: true }).click();
  const refused = page.getByRole("alert").filter({ hasText: `Park ${callId}: invaladdress: ` });
  await refused.waitFor();
  assert.match(await refused.innerText(), /9999/);
  await page.getByLabel("Park slot").fill("");
  await page.getByRole("button", { name: "Park", exact: true }).click();
  // The parker's phone is released; the far party waits in a slot.
  await a.waitFor((e) => e.event === "call" && e.state === "DISCONNECTED");
  const parked = page.locator("#parked-body tr").filter({ hasText: far });
  await parked.waitFor();
  const slot = await parked.getAttribute("data-slot");
  assert.match(slot, /^70\d\d$/, "a slot of the default range 7001-7020");
  await page.getByRole("alert").filter({ hasText: `parked at ${slot}` }).waitFor();
  await page.locator("#event-log li[data-type='park.parked']", { hasText: `${far} parked at ${slot}` }).waitFor();

  await page.screenshot({ path: join(ARTIFACTS, "console-parked.png"), fullPage: true });

  // Parked calls have no snapshot endpoint for apps: after a reload the page
  // rebuilds the list by replaying the journal.
  await page.reload();
  await page.locator("#stream-state", { hasText: "live" }).waitFor();
  await page.locator(`#parked-body tr[data-slot="${slot}"]`, { hasText: far }).waitFor();
  await page.locator("#event-log li.replayed[data-type='park.parked']").first().waitFor();

  // Unpark to 1001: its phone rings, answers, and talks to 1002 again.
  const retrieve = page.locator(`#parked-body tr[data-slot="${slot}"]`);
  await retrieve.getByLabel(`Retrieve ${slot} to address`).selectOption("1001");
  await retrieve.getByRole("button", { name: "Unpark" }).click();
  const ringing = await a.waitFor((e) => e.event === "incoming");
  if (!ringing.auto) a.send({ cmd: "answer" });
  await a.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  await page.locator("#parked-empty").waitFor();
  assert.equal(await page.locator("#parked-body tr").count(), 0);
  await page.locator("#event-log li[data-type='park.unparked']", { hasText: `${far} left ${slot}` }).waitFor();
  const back = page.locator("#calls-body tr.selected");
  await back.locator("[data-field=state]", { hasText: /^connected/ }).waitFor();
  assert.match(await back.innerText(), /unpark/, "the new call says why it came");

  // Drop from the page: the far phone hangs up.
  await page.getByRole("button", { name: "Drop", exact: true }).click();
  await b.waitFor((e) => e.event === "call" && e.state === "DISCONNECTED");
  await back.locator("[data-field=state]", { hasText: "idle" }).waitFor();
  assert.deepEqual(pageErrors, [], "no script errors");
});

test("a consultation transfer is set up, dialled and completed from the page", async () => {
  const [a, b] = phones;
  const c = await Phone.start("1003", tapir.sipPort);
  phones.push(c);
  assert.equal((await c.register()).code, 200);
  a.send({ cmd: "call", to: "1002" });
  await b.waitFor((e) => e.event === "incoming");
  b.send({ cmd: "answer" });
  await a.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  const live = (address, state) => callRow(address)
    .filter({ has: page.locator("[data-field=state]", { hasText: state }) });
  const original = live("1001", /^connected/);
  await original.waitFor();
  const originalId = await original.getAttribute("data-call");
  await original.getByRole("button", { name: originalId }).click();

  // Set up transfer: the original waits on hold, the page selects the
  // consultation call at dial tone, where only dialling and dropping fit.
  await page.getByRole("button", { name: "Set up transfer" }).click();
  await page.locator("#selected-call", { hasText: "dialtone" }).waitFor();
  const consultId = await page.locator("#calls-body tr.selected").getAttribute("data-call");
  assert.notEqual(consultId, originalId);
  await page.locator(`#calls-body tr[data-call="${originalId}"] [data-field=state]`, { hasText: "onholdpendtransfer" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Dial", exact: true }).isEnabled(), true);
  assert.equal(await page.getByRole("button", { name: "Hold", exact: true }).isEnabled(), false);
  await page.getByLabel("Digits").fill("1003");
  await page.getByRole("button", { name: "Dial", exact: true }).click();
  await c.waitFor((e) => e.event === "incoming");
  c.send({ cmd: "answer" });
  await c.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  await page.locator(`#calls-body tr[data-call="${consultId}"] [data-field=state]`, { hasText: /^connected/ }).waitFor();

  // Back on the original: Complete transfer fits now; 1002 and 1003 talk.
  await page.locator(`#calls-body tr[data-call="${originalId}"]`).getByRole("button", { name: originalId }).click();
  const complete = page.getByRole("button", { name: "Complete transfer" });
  await page.waitForFunction(() =>
    !document.querySelector("#op-buttons button[data-op='complete-transfer']").disabled);
  await page.locator("#in-mode").selectOption("transfer");
  await complete.click();
  await a.waitFor((e) => e.event === "call" && e.state === "DISCONNECTED");
  await live("1002", /^connected/).waitFor();
  await live("1003", /^connected/).waitFor();
  const calls = (await tapir.http("GET", "/v1/calls")).body.calls;
  const at1003 = calls.find((x) => x.address === "1003" && x.state === "connected");
  assert.equal(at1003.connected?.address, "1002", "1003 talks to 1002");
  c.send({ cmd: "hangup" });
  await b.waitFor((e) => e.event === "call" && e.state === "DISCONNECTED");
  assert.deepEqual(pageErrors, [], "no script errors");
});

test("forwarding is set and cleared from the page", async () => {
  const form = page.locator("#forward-form");
  await form.getByLabel("Address").selectOption("1003");
  await form.getByLabel("Mode").selectOption("busy");
  await form.getByLabel("To").fill("1002");
  await form.getByRole("button", { name: "Add rule" }).click();
  const row = page.locator('#addresses-body tr[data-address="1003"]');
  await row.getByText("busy → 1002").waitFor();
  const status = (await tapir.http("GET", "/v1/addresses/1003")).body;
  assert.deepEqual(status.forwarding.rules.map((r) => [r.mode, r.to]), [["busy", "1002"]]);
  await page.locator("#event-log li[data-type='address.forwarding']", { hasText: "1003 forwarding: busy → 1002" }).waitFor();
  await form.getByRole("button", { name: "Clear forwarding" }).click();
  await row.getByText("none").waitFor();
  assert.deepEqual((await tapir.http("GET", "/v1/addresses/1003")).body.forwarding.rules, []);
  // Do-not-disturb (unconditional, no destination) lights 1003's lamp;
  // clearing it puts the lamp out.
  await form.getByLabel("Mode").selectOption("unconditional");
  await form.getByLabel("To").fill("");
  await form.getByRole("button", { name: "Add rule" }).click();
  await row.locator('.lamp[data-lamp="dnd"]').waitFor();
  await form.getByRole("button", { name: "Clear forwarding" }).click();
  await row.locator('.lamp[data-lamp="off"]').waitFor();
  assert.deepEqual(pageErrors, [], "no script errors");
});

test("forwarding every address of a line at once is set and cleared from the page", async () => {
  const form = page.locator("#forward-form");
  const whole = form.getByLabel("Whole line");
  const rules = async (address) =>
    (await tapir.http("GET", `/v1/addresses/${address}`)).body.forwarding.rules.map((r) => [r.mode, r.to]);
  // 1004 is the second address of 1003's line: ticking the box forwards both.
  await form.getByLabel("Address").selectOption("1004");
  await form.getByLabel("Mode").selectOption("unconditional");
  await form.getByLabel("To").fill("1002");
  await whole.check();
  await form.getByRole("button", { name: "Add rule" }).click();
  for (const address of ["1003", "1004"]) {
    const row = page.locator(`#addresses-body tr[data-address="${address}"]`);
    await row.getByText("unconditional → 1002").waitFor();
    await row.locator('.lamp[data-lamp="forwarded"]').waitFor();
    assert.deepEqual(await rules(address), [["unconditional", "1002"]], `${address} is forwarded`);
    await page.locator("#event-log li[data-type='address.forwarding']",
      { hasText: `${address} forwarding: unconditional → 1002` }).first().waitFor();
  }
  assert.deepEqual(await rules("1001"), [], "another line's address is not");
  // A rule the line's addresses cannot all take (busy: 1003 forwarded to
  // itself) is refused for all: the API's error is shown, nothing changes.
  await form.getByLabel("Mode").selectOption("busy");
  await form.getByLabel("To").fill("1003");
  await form.getByRole("button", { name: "Add rule" }).click();
  await page.getByRole("alert").filter({ hasText: "forward line 1003: invalparam" }).waitFor();
  assert.deepEqual(await rules("1004"), [["unconditional", "1002"]]);
  // Clearing with the box ticked clears every address of the line.
  await form.getByRole("button", { name: "Clear forwarding" }).click();
  for (const address of ["1003", "1004"]) {
    const row = page.locator(`#addresses-body tr[data-address="${address}"]`);
    await row.locator('.lamp[data-lamp="off"]').waitFor();
    assert.deepEqual(await rules(address), [], `${address} no longer forwarded`);
  }
  await whole.uncheck();
  assert.deepEqual(await accessibilityViolations(page), [], "the switchboard meets WCAG 2.1 AA (axe)");
  assert.deepEqual(pageErrors, [], "no script errors");
});

test("a call's media mode is shown and set from the page, in any state", async () => {
  // lineSetMediaMode: "The call state of hCall can be any state": a call
  // the app owns, idle ones included (the earlier tests' calls have ended).
  const calls = (await tapir.http("GET", "/v1/calls")).body.calls;
  const target = calls.find((c) => c.privilege === "owner" && c.media_mode !== "automatedvoice");
  assert.ok(target, `a call the app owns: ${JSON.stringify(calls)}`);
  await page.locator(`#calls-body tr[data-call="${target.id}"]`)
    .getByRole("button", { name: target.id }).click();
  await page.locator("#selected-media", { hasText: target.media_mode }).waitFor();
  await page.getByLabel("Media mode").selectOption("automatedvoice");
  await page.getByRole("button", { name: "Set media mode" }).click();
  await page.locator("#selected-media", { hasText: "automatedvoice" }).waitFor();
  assert.equal((await tapir.http("GET", `/v1/calls/${target.id}`)).body.media_mode, "automatedvoice");
  await page.locator("#event-log li[data-type='call.info']", { hasText: target.id })
    .filter({ hasText: "mediamode" }).first().waitFor();
  // Handoff, by app or by media mode, is offered in any state too.
  assert.equal(await page.getByRole("button", { name: "Hand off by media mode" }).isEnabled(), true);
  assert.deepEqual(await accessibilityViolations(page), [], "the switchboard meets WCAG 2.1 AA (axe)");
  assert.deepEqual(pageErrors, [], "no script errors");
});

test("the call history shows the CDRs, or the API's error", async () => {
  await page.getByRole("link", { name: "Call history" }).click();
  await page.getByRole("heading", { name: "Call history" }).waitFor();
  assert.equal(await page.locator("#switchboard").isVisible(), false, "one view at a time");
  const direct = await tapir.http("GET", "/v1/admin/cdr?limit=50", undefined, ADMIN_TOKEN);
  await page.getByLabel("Admin token").fill(ADMIN_TOKEN);
  await page.getByRole("button", { name: "Load" }).click();
  if (direct.status === 200) {
    const cdrs = direct.body.cdrs;
    await page.locator("#history-body tr").first().waitFor();
    assert.equal(await page.locator("#history-body tr").count(), cdrs.length);
    if (cdrs.length > 0) {
      const first = await page.locator("#history-body tr").first().innerText();
      for (const p of cdrs[0].parties) assert.ok(first.includes(p.address), `${first} names ${p.address}`);
      // Each leg's media quality from tapir's RTCP, as the CDR has it.
      for (const q of cdrs[0].quality || []) {
        const line = `${q.address}: ${q.packets_received} received, ${q.packets_lost} lost`;
        assert.ok(first.includes(line), `${first} shows ${line}`);
      }
    }
  } else {
    const { code, message } = direct.body.error;
    await page.locator("#history-empty", { hasText: `${code}: ${message}` }).waitFor();
  }
  assert.deepEqual(await accessibilityViolations(page), [], "the history page meets WCAG 2.1 AA (axe)");
  await page.screenshot({ path: join(ARTIFACTS, "console-history.png"), fullPage: true });
  // An app token is not the operator's: the API's 403 is shown.
  const refused = await tapir.http("GET", "/v1/admin/cdr?limit=50", undefined, TOKEN);
  assert.equal(refused.status, 403);
  await page.getByLabel("Admin token").fill(TOKEN);
  await page.getByRole("button", { name: "Load" }).click();
  await page.locator("#history-empty", { hasText: `${refused.body.error.code}: ${refused.body.error.message}` }).waitFor();
  await page.getByRole("link", { name: "Switchboard" }).click();
  await page.getByRole("heading", { name: "Calls", exact: true }).waitFor();
  assert.equal(await page.locator("#history").isVisible(), false, "one view at a time");

  // Signing out forgets both tokens and closes the stream.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.locator("#stream-state", { hasText: "not connected" }).waitFor();
  await page.reload();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.deepEqual(pageErrors, [], "no script errors");
});

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
