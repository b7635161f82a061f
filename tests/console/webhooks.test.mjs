// The console's Webhooks card in a real browser (headless Chromium driven by
// Playwright) against a real `tapir serve`, no phones: the app adds a
// webhook and sees its secret once, a refused URL shows the API's code and
// sentence, the list matches the API's (without the secret), and Delete
// removes it. axe-core checks WCAG 2.1 AA with the card filled.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Tapir, TOKEN, chromiumPath, CHROMIUM_ARGS, accessibilityViolations } from "./harness.mjs";

const WAIT = 10000;
// A public address (no name to resolve): accepted, though nothing answers.
const URL_OK = "https://93.184.216.34/tapir-hook";
let tapir;
let context;
let page;
let profile;
const pageErrors = [];

before(async () => {
  tapir = await Tapir.start();
  profile = mkdtempSync(join(tmpdir(), "tapir-console-webhooks-"));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath(),
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 1000 },
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
  tapir?.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

test("webhooks are added, listed without their secret, refused with the API's sentence, and deleted", async () => {
  await page.goto(`${tapir.base}/console`);
  await page.getByLabel("App token").fill(TOKEN);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.getByRole("heading", { name: "Webhooks" }).waitFor();
  // The rest of the switchboard started too (the event stream is live).
  await page.locator("#stream-state", { hasText: "live" }).waitFor();
  await page.locator("#webhooks-empty").waitFor();

  // Refused: http:// is not allowed by default; the page shows the API's words.
  const refused = await tapir.http("POST", "/v1/webhooks", { url: "http://93.184.216.34/x" });
  assert.equal(refused.status, 400);
  const form = page.locator("#webhook-form");
  await form.getByLabel("URL").fill("http://93.184.216.34/x");
  await form.getByRole("button", { name: "Add webhook" }).click();
  await page.getByRole("alert").filter({ hasText: refused.body.error.code }).waitFor();
  assert.ok((await page.getByRole("alert").innerText()).includes(refused.body.error.message));

  // Added: listed, its secret shown once on the page, never by the list.
  await form.getByLabel("URL").fill(URL_OK);
  await form.getByLabel("Events").fill("call.*, park.parked");
  await form.getByLabel("Addresses").fill("1001");
  await form.getByRole("button", { name: "Add webhook" }).click();
  const row = page.locator("#webhooks-body tr");
  await row.first().waitFor();
  const list = (await tapir.http("GET", "/v1/webhooks")).body.webhooks;
  assert.equal(list.length, 1);
  const w = list[0];
  assert.deepEqual(w.events, ["call.*", "park.parked"]);
  assert.deepEqual(w.addresses, ["1001"]);
  assert.equal(w.secret, undefined, "the list never shows the secret");
  const text = await row.first().innerText();
  for (const part of [w.id, URL_OK, "call.*, park.parked", "1001"]) assert.ok(text.includes(part), `${text} shows ${part}`);
  const secret = await page.locator("#webhook-secret").innerText();
  assert.match(secret, new RegExp(`${w.id}.*whsec_[0-9a-f]{40}`));
  assert.deepEqual(await accessibilityViolations(page), [], "the switchboard with webhooks meets WCAG 2.1 AA (axe)");

  // Deleted.
  await page.getByRole("button", { name: `Delete webhook ${w.id}` }).click();
  await page.locator("#webhooks-empty").waitFor();
  assert.deepEqual((await tapir.http("GET", "/v1/webhooks")).body.webhooks, []);
  assert.equal(await page.locator("#webhook-secret").isVisible(), false);
  assert.deepEqual(pageErrors, [], "no script errors");
});
