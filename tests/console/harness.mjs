// What the console's browser test runs against: a real `tapir serve` on free
// loopback ports with a temporary data directory, real pjsua2 phones (the
// interop tests' agent, tests/interop/pjsua_phone.py, driven over JSON
// lines), and Debian's Chromium under Playwright. Every wait is bounded.

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { mkdtempSync, writeFileSync, openSync, closeSync, existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import net from "node:net";
import dgram from "node:dgram";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, "..", "..");
const TARGET = process.env.CARGO_TARGET_DIR || join(ROOT, "target");
const TAPIR = process.env.TAPIR_BIN || join(TARGET, "debug", "tapir");
const PHONE = join(ROOT, "tests", "interop", "pjsua_phone.py");
const PYTHON = process.env.PYTHON || "python3";

export const TOKEN = "console-app-token";
export const ADMIN_TOKEN = "console-admin-token";
export const PASSWORDS = { 1001: "pw-1001-secret", 1002: "pw-1002-secret", 1003: "pw-1003-secret" };

/** Where test artifacts (screenshots) go. */
export const ARTIFACTS = process.env.TAPIR_TEST_ARTIFACTS || join(TARGET, "test-artifacts");

async function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket("udp4");
    s.once("error", reject);
    s.bind(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A running `tapir serve` with three phone lines (1003's also has address 1004) and one app. */
export class Tapir {
  static async start() {
    const t = new Tapir();
    t.dir = mkdtempSync(join(tmpdir(), "tapir-console-"));
    t.sipPort = await freeUdpPort();
    t.tlsPort = await freeTcpPort();
    t.httpPort = await freeTcpPort();
    const lines = Object.entries(PASSWORDS).map(([a, p]) =>
      `[[lines]]\naddress = "${a}"\nkind = "phone"\npassword = "${p}"\nname = "Phone ${a}"\n`
      // 1001 answers calls tapir places for it (third-party call control:
      // a consultation call's dial tone), as in the interop tests.
      + `auto_answer = ${a === "1001"}\n`
      // 1003's line has a second address, 1004 (whole-line forwarding).
      + (a === "1003" ? `more_addresses = ["1004"]\n` : "")
      + "\n").join("");
    const config = `data_dir = "${t.dir}/data"\n`
      + `[sip]\nlisten = ["udp:127.0.0.1:${t.sipPort}", "tcp:127.0.0.1:${t.sipPort}", "tls:127.0.0.1:${t.tlsPort}"]\n`
      + `domain = "127.0.0.1"\n`
      + `[http]\nlisten = "127.0.0.1:${t.httpPort}"\nadmin_token = "${ADMIN_TOKEN}"\n\n`
      + lines
      + `[[apps]]\nname = "console"\ntoken = "${TOKEN}"\nlines = ["*"]\nprivileges = ["owner", "monitor"]\n`;
    const path = join(t.dir, "tapir.toml");
    writeFileSync(path, config);
    t.logPath = join(t.dir, "tapir.log");
    const log = openSync(t.logPath, "w");
    t.proc = spawn(TAPIR, ["serve", "--config", path], { stdio: ["ignore", log, log] });
    closeSync(log);
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${t.base}/healthz`);
        if (r.ok) return t;
      } catch { /* not up yet */ }
      await sleep(100);
    }
    t.stop();
    throw new Error(`tapir did not start (log: ${t.logPath})`);
  }

  get base() {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** Call the API as the app (or with another token); the parsed body and status. */
  async http(method, path, body, token = TOKEN) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(`${this.base}${path}`, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  }

  stop() {
    if (this.proc && this.proc.exitCode === null) this.proc.kill("SIGTERM");
  }
}

/** One pjsua2 phone (tests/interop/pjsua_phone.py) over its stdin/stdout. */
export class Phone {
  static async start(user, sipPort) {
    const p = new Phone();
    p.user = user;
    p.events = [];
    p.waiters = [];
    p.proc = spawn(PYTHON, [PHONE, "--user", user, "--password", PASSWORDS[user],
      "--server", `127.0.0.1:${sipPort}`, "--run-seconds", "90", "--workdir", tmpdir()],
    { stdio: ["pipe", "pipe", "ignore"] });
    createInterface({ input: p.proc.stdout }).on("line", (line) => {
      let ev;
      try { ev = JSON.parse(line); } catch { return; } // pjsua's own log lines
      p.events.push(ev);
      for (const w of [...p.waiters]) w();
    });
    await p.waitFor((e) => e.event === "ready", 15000);
    return p;
  }

  send(cmd) {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  /** The first event (seen before or arriving now) that matches; it is consumed. */
  waitFor(pred, timeout = 10000) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const i = this.events.findIndex(pred);
        if (i < 0) return false;
        const [ev] = this.events.splice(i, 1);
        cleanup();
        resolve(ev);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.user}: no matching event within ${timeout} ms; saw ${JSON.stringify(this.events)}`));
      }, timeout);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
      };
      if (!check()) this.waiters.push(check);
    });
  }

  async register() {
    this.send({ cmd: "register" });
    return this.waitFor((e) => e.event === "reg");
  }

  async stop() {
    if (this.proc.exitCode !== null) return;
    const exited = new Promise((r) => this.proc.once("exit", r));
    try { this.send({ cmd: "quit" }); } catch { /* already gone */ }
    const t = setTimeout(() => this.proc.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(t);
  }
}

/** Debian's Chromium (installed by scripts/test). */
export function chromiumPath() {
  const path = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!existsSync(path)) throw new Error(`no Chromium at ${path}: apt-get install chromium`);
  return path;
}

/** Launch flags: no network chatter, no first-run, no GPU, no sandbox (root in CI). */
export const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * WCAG 2.x A and AA violations axe-core finds on the page as it stands, as
 * `rule: target` strings. axe is evaluated over the DevTools protocol, so
 * the page's own Content-Security-Policy stays in force.
 */
export async function accessibilityViolations(page) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    globalThis.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }));
  return result.violations.flatMap((v) =>
    v.nodes.map((n) => `${v.id} (${v.impact}): ${n.target.join(" ")} — ${v.help}`));
}
