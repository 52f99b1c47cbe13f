// LangChain.js peers for Catena's side-by-side benchmarks (benches/compare/README.md).
//
//   node bench.mjs --corpus F --vectors F --queries F [--quick] [--expect-tokens N]
//
// Run from a directory whose node_modules holds package-lock.json's packages (run.sh copies this
// file next to `npm ci`'s install in .catena/bench/js). Prints one JSON object per line on stdout;
// everything else goes to stderr, a peer that cannot run as `SKIP <workload> <impl>: <reason>`.

import { readFileSync } from "node:fs";

const DIM = 384;
const WARM_BYTES = 100_000;

const log = (...a) => console.error(...a);
const skip = (workload, impl, reason) => log(`SKIP ${workload} ${impl}: ${reason}`);
const emit = (workload, impl, value, unit, wall_s, cpu_s, note) =>
  process.stdout.write(JSON.stringify({ workload, impl, value, unit, wall_s, cpu_s, note }) + "\n");
const version = (pkg) => {
  try {
    // Read directly: some packages' `exports` do not expose package.json.
    const url = new URL(`./node_modules/${pkg}/package.json`, import.meta.url);
    return `${pkg} ${JSON.parse(readFileSync(url, "utf8")).version}`;
  } catch {
    return `${pkg} ?`;
  }
};
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
const now = () => performance.now() / 1e3;

/** Runs fn once, then again until minS has passed: [runs, wall s, cpu s, last result]. */
async function measure(minS, fn) {
  const c0 = cpuSeconds();
  const t0 = now();
  let runs = 0;
  for (;;) {
    const out = await fn();
    runs += 1;
    const wall = now() - t0;
    if (wall >= minS) return [runs, wall, cpuSeconds() - c0, out];
  }
}

function parseArgs(argv) {
  const args = { quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--quick") args.quick = true;
    else if (a === "--corpus") args.corpus = argv[++i];
    else if (a === "--vectors") args.vectors = argv[++i];
    else if (a === "--queries") args.queries = argv[++i];
    else if (a === "--expect-tokens") args.expectTokens = Number(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!args.corpus || !args.vectors || !args.queries)
    throw new Error("usage: bench.mjs --corpus F --vectors F --queries F [--quick] [--expect-tokens N]");
  return args;
}

function loadF32(path) {
  const buf = readFileSync(path);
  // Copy into an aligned buffer (readFileSync's may be a pooled slice), little-endian as written.
  const out = new Float32Array(buf.byteLength / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

async function benchSplitters(corpus, minS) {
  const mb = Buffer.byteLength(corpus, "utf8") / 1e6;
  const warm = Buffer.from(corpus, "utf8").subarray(0, WARM_BYTES).toString("utf8");
  let RecursiveCharacterTextSplitter;
  try {
    ({ RecursiveCharacterTextSplitter } = await import("@langchain/textsplitters"));
  } catch (e) {
    skip("split_recursive_chars", "langchain-js", String(e));
    skip("split_recursive_tokens", "langchain-js", String(e));
    return;
  }
  const ver = version("@langchain/textsplitters");
  const splitter = new RecursiveCharacterTextSplitter({ chunkSize: 1000, chunkOverlap: 200 });
  await splitter.splitText(warm);
  const [runs, wall, cpu, chunks] = await measure(minS, () => splitter.splitText(corpus));
  emit(
    "split_recursive_chars",
    "langchain-js",
    (mb * runs) / wall,
    "MB/s",
    wall,
    cpu,
    `${ver} RecursiveCharacterTextSplitter({chunkSize: 1000, chunkOverlap: 200}).splitText; chunks=${chunks.length}; ${runs} runs`,
  );

  if (typeof RecursiveCharacterTextSplitter.fromTiktoken !== "function") {
    skip(
      "split_recursive_tokens",
      "langchain-js",
      `${ver} has no RecursiveCharacterTextSplitter.fromTiktoken (only TokenTextSplitter, whose ` +
        `encoder is fetched from tiktoken.pages.dev); not run`,
    );
    return;
  }
  const tokSplitter = RecursiveCharacterTextSplitter.fromTiktoken({
    encodingName: "cl100k_base",
    chunkSize: 256,
    chunkOverlap: 32,
  });
  await tokSplitter.splitText(warm);
  const [r2, w2, c2, ch2] = await measure(minS, () => tokSplitter.splitText(corpus));
  emit(
    "split_recursive_tokens",
    "langchain-js",
    (mb * r2) / w2,
    "MB/s",
    w2,
    c2,
    `${ver} RecursiveCharacterTextSplitter.fromTiktoken(cl100k_base, 256, 32); chunks=${ch2.length}; ${r2} runs`,
  );
}

async function benchCountTokens(corpus, minS, expectTokens) {
  const mb = Buffer.byteLength(corpus, "utf8") / 1e6;
  let enc;
  try {
    // js-tiktoken (a dependency of @langchain/core) with its bundled ranks: no network.
    const { getEncoding } = await import("js-tiktoken");
    enc = getEncoding("cl100k_base");
  } catch (e) {
    skip("count_tokens_cl100k", "js-tiktoken", String(e));
    return;
  }
  // No allowed and no disallowed special tokens: special-token text is ordinary text
  // (tiktoken's encode_ordinary).
  const count = (t) => enc.encode(t, [], []).length;
  count(Buffer.from(corpus, "utf8").subarray(0, WARM_BYTES).toString("utf8"));
  const [runs, wall, cpu, tokens] = await measure(minS, () => count(corpus));
  const check = Number.isFinite(expectTokens)
    ? tokens === expectTokens
      ? "= tiktoken-py"
      : `MISMATCH: tiktoken-py counts ${expectTokens}`
    : "tiktoken-py count not available";
  emit(
    "count_tokens_cl100k",
    "js-tiktoken",
    (mb * runs) / wall,
    "MB/s",
    wall,
    cpu,
    `${version("js-tiktoken")} encode(text, [], []); tokens=${tokens} (${check}); ${runs} runs`,
  );
}

/** Exact top-10 by cosine over Float32Array rows (a correctness reference, not timed). */
function exactTop10(flat, norms, q) {
  const n = norms.length;
  let qn = 0;
  for (let j = 0; j < DIM; j++) qn += q[j] * q[j];
  qn = Math.sqrt(qn);
  const scores = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * DIM;
    for (let j = 0; j < DIM; j++) s += flat[o + j] * q[j];
    scores[i] = s / (norms[i] * qn);
  }
  const idx = Array.from(scores.keys());
  idx.sort((a, b) => scores[b] - scores[a]);
  return idx.slice(0, 10);
}

async function benchSearch(vectorsPath, queriesPath, quick) {
  let MemoryVectorStore, Document;
  try {
    ({ MemoryVectorStore } = await import("@langchain/classic/vectorstores/memory"));
    ({ Document } = await import("@langchain/core/documents"));
  } catch (e) {
    skip("search_single", "langchain-js", String(e));
    return;
  }
  const flat = loadF32(vectorsPath);
  const qflat = loadF32(queriesPath);
  const n = flat.length / DIM;
  const nq = qflat.length / DIM;
  // Vectors as plain number arrays, what an Embeddings implementation returns.
  const rows = [];
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const row = Array.from(flat.subarray(i * DIM, (i + 1) * DIM));
    rows.push(row);
    let s = 0;
    for (const x of row) s += x * x;
    norms[i] = Math.sqrt(s);
  }
  const queries = [];
  for (let i = 0; i < nq; i++) queries.push(Array.from(qflat.subarray(i * DIM, (i + 1) * DIM)));
  const embeddings = {
    embedQuery: async () => {
      throw new Error("precomputed vectors only");
    },
    embedDocuments: async () => {
      throw new Error("precomputed vectors only");
    },
  };
  const t0b = now();
  const store = new MemoryVectorStore(embeddings);
  await store.addVectors(
    rows,
    rows.map((_, i) => new Document({ pageContent: String(i), metadata: {} })),
  );
  log(`langchain-js MemoryVectorStore: ${n} vectors added in ${(now() - t0b).toFixed(1)}s`);
  const timed = quick ? 10 : 20;
  await store.similaritySearchVectorWithScore(queries[0], 10); // warm-up
  const c0 = cpuSeconds();
  const t0 = now();
  const results = [];
  for (let i = 0; i < timed; i++) results.push(await store.similaritySearchVectorWithScore(queries[i], 10));
  const wall = now() - t0;
  const cpu = cpuSeconds() - c0;
  let agree = 0;
  for (let i = 0; i < timed; i++) {
    const got = results[i].map(([d]) => Number(d.pageContent));
    const want = exactTop10(flat, norms, qflat.subarray(i * DIM, (i + 1) * DIM));
    if (got.length === 10 && got.every((x, j) => x === want[j])) agree += 1;
  }
  emit(
    "search_single",
    "langchain-js",
    timed / wall,
    "queries/s",
    wall,
    cpu,
    `${version("@langchain/classic")} MemoryVectorStore.similaritySearchVectorWithScore, only ${timed} of ${nq} ` +
      `queries timed (slow); top-10 equal to exact order for ${agree}/${timed}; Node ${process.version}`,
  );
}

async function benchChain(quick) {
  let ChatPromptTemplate, FakeListChatModel, StringOutputParser;
  try {
    ({ ChatPromptTemplate } = await import("@langchain/core/prompts"));
    ({ FakeListChatModel } = await import("@langchain/core/utils/testing"));
    ({ StringOutputParser } = await import("@langchain/core/output_parsers"));
  } catch (e) {
    skip("chain_invoke", "langchain-js", String(e));
    return;
  }
  const chain = ChatPromptTemplate.fromMessages([
    ["system", "You are terse."],
    ["human", "{question}"],
  ])
    .pipe(new FakeListChatModel({ responses: ["ok"] }))
    .pipe(new StringOutputParser());
  const [warm, n] = quick ? [200, 2_000] : [1_000, 20_000];
  for (let i = 0; i < warm; i++) await chain.invoke({ question: `q${i}` });
  const lat = new Float64Array(n);
  const c0 = cpuSeconds();
  const t0 = now();
  let out;
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    out = await chain.invoke({ question: `q${i}` });
    lat[i] = Number(process.hrtime.bigint() - s) / 1e3;
  }
  const wall = now() - t0;
  const cpu = cpuSeconds() - c0;
  if (out !== "ok") throw new Error(`unexpected chain output ${out}`);
  lat.sort();
  const p50 = n % 2 ? lat[(n - 1) / 2] : (lat[n / 2 - 1] + lat[n / 2]) / 2;
  const p99 = lat[Math.floor(n * 0.99)];
  const mean = lat.reduce((a, b) => a + b, 0) / n;
  emit(
    "chain_invoke",
    "langchain-js",
    p50,
    "µs p50",
    wall,
    cpu,
    `${version("@langchain/core")} ChatPromptTemplate.pipe(FakeListChatModel).pipe(StringOutputParser), invoke; ` +
      `${n} invokes after ${warm} warm-up; mean ${mean.toFixed(0)} µs, p99 ${p99.toFixed(0)} µs; Node ${process.version}`,
  );
}

const args = parseArgs(process.argv.slice(2));
const minS = args.quick ? 1.0 : 3.0;
log(`langchain-js peers: Node ${process.version}`);
const corpus = readFileSync(args.corpus, "utf8");
await benchSplitters(corpus, minS);
await benchCountTokens(corpus, minS, args.expectTokens);
await benchSearch(args.vectors, args.queries, args.quick);
await benchChain(args.quick);
