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
//     "state": "done", "answer_updates": N, "errors": [...], "bad_key": { same fields } }
// (bad_key with --bad-key), all of the page's latest turn; `status` is the turn's error text and
// `state` its data-state. `answer_updates` counts the DOM updates of the answer (more than one
// when the answer streamed in).
// Exits 2 when the page does not finish (body[data-done="1"]) in time, 1 on other failures.
import process from "node:process";
import { parseArgs } from "node:util";

import { openPage, run, settled } from "./support.mjs";

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

// Opens the page in a fresh context, asks `question` with `key`, waits for the end of the answer.
async function ask(browser, key, question) {
  const context = await browser.newContext();
  const errors = [];
  try {
    const page = await openPage(context, opts.url, timeout, errors);
    // Count the updates of the answers, to tell a streamed answer from one set all at once.
    await page.evaluate(() => {
      window.__answerUpdates = 0;
      new MutationObserver((records) => {
        for (const r of records) {
          const node = r.target.nodeType === Node.ELEMENT_NODE ? r.target : r.target.parentElement;
          if (node && node.closest(".answer")) window.__answerUpdates += 1;
        }
      }).observe(document.getElementById("transcript"), {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
    await page.fill("#key", key);
    await page.fill("#question", question);
    await page.click("#ask");
    await settled(page, timeout, () => snapshot(page));
    return { ...(await snapshot(page)), errors };
  } finally {
    await context.close().catch(() => {});
  }
}

// What the page shows for its latest turn.
function snapshot(page) {
  return page.evaluate(() => {
    const turn = document.querySelector("#transcript .turn:last-of-type");
    const items = turn ? [...turn.querySelectorAll(".sources li")] : [];
    return {
      answer: turn ? turn.querySelector(".answer").textContent : "",
      sources: items.map((li) => li.dataset.source ?? li.textContent),
      source_texts: items.map((li) => li.textContent),
      status: turn ? turn.querySelector(".error").textContent : document.getElementById("status").textContent,
      state: turn ? turn.dataset.state : null,
      answer_updates: window.__answerUpdates ?? 0,
    };
  });
}

await run("chat.mjs", timeout, async (browser) => {
  const result = await ask(browser, opts.key, opts.question);
  if (opts["bad-key"] !== undefined) {
    result.bad_key = await ask(browser, opts["bad-key"], opts.question);
  }
  return result;
});
