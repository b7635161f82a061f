// The console's call recording in a real browser (headless Chromium driven
// by Playwright) against a real `tapir serve` and two real pjsua2 phones:
// Record on a selected call starts a recording the API lists, Pause and
// Resume answer, Stop ends it; the Recordings card lists it, Download hands
// the browser a WAV file (the API's bytes), Delete removes it. A second
// Stop shows the API's code and sentence. axe-core checks WCAG 2.1 AA with
// the card filled.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import {
  Tapir, Phone, TOKEN, chromiumPath, CHROMIUM_ARGS, accessibilityViolations,
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
  profile = mkdtempSync(join(tmpdir(), "tapir-console-recordings-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 },
    acceptDownloads: true,
  });
  page = context.pages()[0] || await context.newPage();
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
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

test("a call is recorded, listed, downloaded and deleted from the console", async () => {
  await page.goto(`${tapir.base}/console`);
  await page.getByLabel("App token").fill(TOKEN);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("heading", { name: "Recordings" }).waitFor();
  await page.locator("#stream-state", { hasText: "live" }).waitFor();
  await page.locator("#recordings-empty").waitFor();
  await page.getByRole("button", { name: "Open all lines" }).click();
  await page.getByRole("button", { name: "Close line 1001" }).waitFor();

  const a = await Phone.start("1001", tapir.sipPort);
  const b = await Phone.start("1002", tapir.sipPort);
  phones = [a, b];
  assert.equal((await a.register()).code, 200);
  assert.equal((await b.register()).code, 200);
  a.send({ cmd: "call", to: "1002" });
  await b.waitFor((e) => e.event === "incoming");
  b.send({ cmd: "answer" });
  await a.waitFor((e) => e.event === "call" && e.state === "CONFIRMED");
  a.send({ cmd: "tone", hz: 600 });
  b.send({ cmd: "tone", hz: 1000 });
  const row = page.locator("#calls-body tr").filter({ has: page.locator("td", { hasText: /^1001$/ }) });
  await row.locator("[data-field=state]", { hasText: /^connected/ }).waitFor();
  const callId = await row.getAttribute("data-call");
  await row.getByRole("button", { name: callId }).click();
  await page.locator("#selected-call", { hasText: callId }).waitFor();

  // Record (mixed), pause, resume, stop: each answered with the recording.
  await page.locator("#in-channels").selectOption("mixed");
  await page.getByRole("button", { name: "Record", exact: true }).click();
  const started = page.getByRole("alert").filter({ hasText: /recording rec-/ });
  await started.waitFor();
  const id = (await started.innerText()).match(/rec-[0-9a-f]{32}/)[0];
  const listed = (await tapir.http("GET", "/v1/recordings")).body.recordings;
  assert.equal(listed[0].id, id);
  assert.equal(listed[0].channels, "mixed");
  await page.locator(`#recordings-body tr[data-recording="${id}"]`, { hasText: "recording" }).waitFor();
  await page.getByRole("button", { name: "Pause recording" }).click();
  await page.getByRole("button", { name: "Resume recording" }).click();
  await new Promise((r) => setTimeout(r, 1000));
  await page.getByRole("button", { name: "Stop recording" }).click();
  const recRow = page.locator(`#recordings-body tr[data-recording="${id}"]`);
  await recRow.locator("td", { hasText: "stopped" }).waitFor();
  // A second stop: the API's words.
  const again = await tapir.http("POST", `/v1/calls/${callId}/record`, { action: "stop" });
  assert.equal(again.status, 409);
  await page.getByRole("button", { name: "Stop recording" }).click();
  await page.getByRole("alert").filter({ hasText: again.body.error.code }).waitFor();

  // Download: the browser gets the API's WAV file.
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: `Download recording ${id}` }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `${id}.wav`);
  const wav = readFileSync(await download.path());
  assert.equal(wav.subarray(0, 4).toString(), "RIFF");
  assert.equal(wav.readUInt32LE(40), wav.length - 44, "the header names the whole file");
  const meta = (await tapir.http("GET", `/v1/recordings/${id}`)).body;
  assert.equal(meta.size, wav.length);
  assert.deepEqual(await accessibilityViolations(page), [], "the page with recordings meets WCAG 2.1 AA (axe)");

  // Delete: gone from the card and from the API.
  await page.getByRole("button", { name: `Delete recording ${id}` }).click();
  await page.locator("#recordings-empty").waitFor();
  assert.equal((await tapir.http("GET", `/v1/recordings/${id}`)).status, 404);
  assert.deepEqual(pageErrors, []);
});
