// Drives the gateway's chat page (GET /) in headless Chromium and prints what the page shows.
//
//   eval "$(bash scripts/browser.sh)"
//   node examples/gateway/e2e/chat.mjs --url http://127.0.0.1:8080 --key KEY --question "..." \
//        [--bad-key WRONG] [--timeout-ms 60000]
//
// The URL and key may also come from CATENA_GATEWAY_URL and CATENA_API_KEY. Needs CATENA_CHROMIUM
// (a Chromium binary) and CATENA_PLAYWRIGHT_DIR (a directory whose node_modules holds
// playwright-core), both printed by scripts/browser.sh.
//
// Prints one JSON object on stdout:
//   { "answer": "...", "sources": ["rust.md", ...], "source_texts": [...], "status": "...",
//     "answer_updates": N, "errors": [...], "bad_key": { same fields } }   // bad_key with --bad-key
// `answer_updates` counts the DOM updates of #answer (more than one when the answer streamed in).
// Exits 2 when the page does not finish (body[data-done="1"]) in time, 1 on other failures.
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: process.env.CATENA_GATEWAY_URL },
    key: { type: "string", default: process.env.CATENA_API_KEY },
    question: { type: "string", default: "What does the documentation say?" },
    "bad-key": { type: "string" },
    "timeout-ms": { type: "string", default: "60000" },
  },
});
if (!opts.url || opts.key === undefined) {
  console.error("chat.mjs: need --url and --key (or CATENA_GATEWAY_URL and CATENA_API_KEY)");
  process.exit(1);
}
const timeout = Number(opts["timeout-ms"]);
const executablePath = process.env.CATENA_CHROMIUM || "/usr/bin/chromium";
const driverDir = process.env.CATENA_PLAYWRIGHT_DIR;
if (!driverDir) {
  console.error("chat.mjs: CATENA_PLAYWRIGHT_DIR is not set; run: eval \"$(bash scripts/browser.sh)\"");
  process.exit(1);
}
const { chromium } = createRequire(path.join(path.resolve(driverDir), "package.json"))(
  "playwright-core",
);

class Timeout extends Error {}

// Opens the page in a fresh context, asks `question` with `key`, waits for the end of the answer.
async function ask(browser, key, question) {
  const context = await browser.newContext();
  const errors = [];
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()}`);
    });
    const res = await page.goto(new URL("/", opts.url).href, { waitUntil: "load" });
    if (!res || !res.ok()) throw new Error(`GET / answered ${res ? res.status() : "nothing"}`);
    // Count the updates of #answer, to tell a streamed answer from one set all at once.
    await page.evaluate(() => {
      window.__answerUpdates = 0;
      new MutationObserver((records) => {
        window.__answerUpdates += records.length;
      }).observe(document.getElementById("answer"), {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await page.fill("#key", key);
    await page.fill("#question", question);
    await page.click("#ask");
    try {
      await page.waitForSelector('body[data-done="1"]', { state: "attached", timeout });
    } catch (e) {
      const partial = await snapshot(page).catch(() => ({}));
      throw new Timeout(`the page did not finish in ${timeout} ms: ${e.message}\n${JSON.stringify(partial)}`);
    }
    return { ...(await snapshot(page)), errors };
  } finally {
    await context.close().catch(() => {});
  }
}

function snapshot(page) {
  return page.evaluate(() => {
    const items = [...document.querySelectorAll("#sources li")];
    return {
      answer: document.getElementById("answer").textContent,
      sources: items.map((li) => li.dataset.source ?? li.textContent),
      source_texts: items.map((li) => li.textContent),
      status: document.getElementById("status").textContent,
      answer_updates: window.__answerUpdates ?? 0,
    };
  });
}

let browser;
let code = 0;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const result = await ask(browser, opts.key, opts.question);
  if (opts["bad-key"] !== undefined) {
    result.bad_key = await ask(browser, opts["bad-key"], opts.question);
  }
  process.stdout.write(JSON.stringify(result) + "\n");
} catch (e) {
  console.error(`chat.mjs: ${e instanceof Error ? e.stack || e.message : e}`);
  code = e instanceof Timeout ? 2 : 1;
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
