// What the end-to-end scripts share: loading playwright-core from CATENA_PLAYWRIGHT_DIR,
// launching headless Chromium (CATENA_CHROMIUM), and opening the gateway's page in a fresh
// context that records page errors.
import { createRequire } from "node:module";
import path from "node:path";
import process from "node:process";

/// A page that did not reach the awaited state in time (the scripts exit 2 for it).
export class Timeout extends Error {}

/// Launches headless Chromium, or exits 1 when playwright-core cannot be found.
export async function launch(timeout) {
  const driverDir = process.env.CATENA_PLAYWRIGHT_DIR;
  if (!driverDir) {
    console.error('CATENA_PLAYWRIGHT_DIR is not set; run: eval "$(bash scripts/browser.sh)"');
    process.exit(1);
  }
  const { chromium } = createRequire(path.join(path.resolve(driverDir), "package.json"))(
    "playwright-core",
  );
  return chromium.launch({
    executablePath: process.env.CATENA_CHROMIUM || "/usr/bin/chromium",
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
}

/// Opens `url` (the gateway's `/`) in `context`; page errors and console errors go to
/// `errors`.
export async function openPage(context, url, timeout, errors) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console: ${m.text()}`);
  });
  const res = await page.goto(new URL("/", url).href, { waitUntil: "load" });
  if (!res || !res.ok()) throw new Error(`GET / answered ${res ? res.status() : "nothing"}`);
  return page;
}

/// Waits until no request of the page is in flight (`body[data-done="1"]`); `snapshot` says
/// what the page showed when it did not.
export async function settled(page, timeout, snapshot) {
  try {
    await page.waitForSelector('body[data-done="1"]', { state: "attached", timeout });
  } catch (e) {
    const partial = await snapshot().catch(() => ({}));
    throw new Timeout(`the page did not finish in ${timeout} ms: ${e.message}\n${JSON.stringify(partial)}`);
  }
}

/// Runs `main(browser)`, prints its result as one JSON line and exits: 0, 2 on a
/// [`Timeout`], 1 on any other failure.
export async function run(name, timeout, main) {
  let browser;
  let code = 0;
  try {
    browser = await launch(timeout);
    const result = await main(browser);
    process.stdout.write(JSON.stringify(result) + "\n");
  } catch (e) {
    console.error(`${name}: ${e instanceof Error ? e.stack || e.message : e}`);
    code = e instanceof Timeout ? 2 : 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  process.exit(code);
}
