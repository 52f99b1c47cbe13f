// Drives a whole conversation through the gateway's page (GET /) in headless Chromium: file
// uploads, questions, and tasks whose pending tool calls it approves or rejects with the page's
// buttons. Prints what the page showed at each step and the requests it sent.
//
//   eval "$(bash scripts/browser.sh)"
//   node examples/gateway/e2e/conversation.mjs --url http://127.0.0.1:8080 --key KEY \
//        --plan plan.json [--screenshot page.png] [--timeout-ms 60000]
//
// The URL and key may also come from CATENA_GATEWAY_URL and CATENA_API_KEY; CATENA_CHROMIUM and
// CATENA_PLAYWRIGHT_DIR as for chat.mjs. The plan is a JSON array of steps, run in order:
//   { "upload": [{ "name": "notes.md", "content": "..." }, ...] }  choose the files, click Upload
//   { "ask": "question" }                                          type it, click Ask
//   { "task": "task", "decide": "approve" | "reject" | null, "reason": "..." }
//        type it, click "Run as a task"; when the run stops for approval, click Approve or
//        Reject (after typing `reason`), and wait for the continued run
//
// Prints one JSON object on stdout:
//   { "steps": [ { "upload": { "state", "text" } }
//              | { "turn": TURN }                          // after an ask
//              | { "approval": TURN, "turn": TURN } ],     // a task: when stopped, and at the end
//     "transcript": [TURN, ...],           // every turn on the page at the end, oldest first
//     "requests": [{ "method", "path", "body" }],   // the page's POSTs, bodies parsed
//     "markup": N,                         // elements inside answers, events or errors (0: all text)
//     "errors": [...] }
// where TURN = { kind, state, prompt, answer, error, run_id, sources: [...],
//                events: [{ kind, name, text, pending, decision }] }.
// Exits 2 when the page does not finish (body[data-done="1"]) in time, 1 on other failures.
import { readFile } from "node:fs/promises";
import process from "node:process";
import { parseArgs } from "node:util";

import { openPage, run, settled } from "./support.mjs";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string", default: process.env.CATENA_GATEWAY_URL },
    key: { type: "string", default: process.env.CATENA_API_KEY },
    plan: { type: "string" },
    screenshot: { type: "string" },
    "timeout-ms": { type: "string", default: "60000" },
  },
});
if (!opts.url || opts.key === undefined || !opts.plan) {
  console.error("conversation.mjs: need --url, --key and --plan");
  process.exit(1);
}
const timeout = Number(opts["timeout-ms"]);
const plan = JSON.parse(await readFile(opts.plan, "utf8"));

// The page's turns, oldest first.
function transcript(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("#transcript .turn")].map((turn) => ({
      kind: turn.dataset.kind,
      state: turn.dataset.state,
      prompt: turn.querySelector(".prompt .text").textContent,
      answer: turn.querySelector(".answer").textContent,
      error: turn.querySelector(".error").textContent,
      run_id: turn.dataset.runId ?? null,
      sources: [...turn.querySelectorAll(".sources li")].map((li) => li.dataset.source),
      events: [...turn.querySelectorAll(".events > li")].map((li) => ({
        kind: li.className,
        name: li.dataset.name ?? null,
        text: li.textContent,
        pending: li.dataset.pending === "1",
        decision: li.dataset.decision ?? null,
      })),
    })),
  );
}

async function lastTurn(page) {
  const turns = await transcript(page);
  return turns[turns.length - 1];
}

async function step(page, s) {
  const wait = () => settled(page, timeout, () => transcript(page));
  if (s.upload) {
    await page.setInputFiles(
      "#files",
      s.upload.map((f) => ({ name: f.name, mimeType: "text/plain", buffer: Buffer.from(f.content) })),
    );
    await page.click("#upload");
    await wait();
    const status = page.locator("#upload-status");
    return { upload: { state: await status.getAttribute("data-state"), text: await status.textContent() } };
  }
  if (s.ask !== undefined) {
    await page.fill("#question", s.ask);
    await page.click("#ask");
    await wait();
    return { turn: await lastTurn(page) };
  }
  if (s.task !== undefined) {
    await page.fill("#question", s.task);
    await page.click("#run");
    await wait();
    const approval = await lastTurn(page);
    if (!s.decide || approval.state !== "awaiting-approval") return { turn: approval };
    const pending = page.locator("#transcript .turn:last-of-type .approval[data-pending='1']");
    if (s.decide === "reject") {
      if (s.reason) await pending.locator("input.reason").fill(s.reason);
      await pending.locator("button.reject").click();
    } else {
      await pending.locator("button.approve").click();
    }
    await wait();
    return { approval, turn: await lastTurn(page) };
  }
  throw new Error(`unknown step ${JSON.stringify(s)}`);
}

await run("conversation.mjs", timeout, async (browser) => {
  const context = await browser.newContext();
  const errors = [];
  const requests = [];
  try {
    const page = await openPage(context, opts.url, timeout, errors);
    page.on("request", (r) => {
      if (r.method() !== "POST") return;
      let body = r.postData();
      try { body = JSON.parse(body); } catch { /* kept as text */ }
      requests.push({ method: r.method(), path: new URL(r.url()).pathname, body });
    });
    await page.fill("#key", opts.key);
    const steps = [];
    for (const s of plan) steps.push(await step(page, s));
    const markup = await page.evaluate(
      () => document.querySelectorAll(
        "#transcript .answer *, #transcript .error *, #transcript .remark *, #transcript pre *, #transcript .label *",
      ).length,
    );
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    return { steps, transcript: await transcript(page), requests, markup, errors };
  } finally {
    await context.close().catch(() => {});
  }
});
