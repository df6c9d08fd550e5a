// Renders the summary as plain-text tables (stdout) and as Markdown (bench/out/results.md).

const fmt = (x, digits = 2, signed = false) => {
  if (x === null || x === undefined || !Number.isFinite(x)) return "-";
  const s = x.toFixed(digits);
  return signed && x >= 0 ? `+${s}` : s;
};
const fmtInt = (x) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : Math.round(x).toString());
const pct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : `${(100 * x).toFixed(1)}%`);
const kib = (b) => (b === null || b === undefined ? "-" : (b / 1024).toFixed(1));

/** A table as {title, note, head: [...], rows: [[...] | {span: "text"}]}. */
function sections(result) {
  const { summary, targets } = result;
  const names = result.settings.targets;
  const notRun = (t) => (targets[t]?.status !== "ok" ? targets[t]?.status ?? "not run" : null);
  const out = [];

  for (const [key, label] of [["c1", "c=1 (wrk -t1 -c1)"], ["c32", "c=32 (wrk -t2 -c32)"]]) {
    const head = ["target", "req/s", "p50 ms", "p90 ms", "p99 ms", "+p50", "+p90", "+p99", "p50 vs floor"];
    if (key === "c32") head.push("req/s ×floor");
    const rows = names.map((t) => {
      const s = summary.nonstream[key][t];
      if (!s) return { name: t, span: notRun(t) ?? "no data" };
      const r = [t, fmtInt(s.rps), fmt(s.p50, 3), fmt(s.p90, 3), fmt(s.p99, 3), fmt(s.added_p50, 3, true),
        fmt(s.added_p90, 3, true), fmt(s.added_p99, 3, true), t === "direct" ? "" : fmt(s.vs_floor_p50, 3, true)];
      if (key === "c32") r.push(t === "direct" ? "" : fmt(s.rps_vs_floor, 2));
      if (s.errors) r[0] += ` (${s.errors} errors)`;
      return r;
    });
    out.push({
      title: `Non-streaming chat completions, ${label}, ${result.settings.seconds} s per run`,
      note: "medians across rounds; +pN = target pN − direct pN in the same round (added latency), then the median",
      head,
      rows,
    });
  }

  {
    const head = ["target", "TTFB p50 ms", "TTFB p90 ms", "+TTFB", "TTFB vs floor", "merged gaps", "stream ms", "failed"];
    const rows = names.map((t) => {
      const s = summary.stream[t];
      if (!s) return { name: t, span: notRun(t) ?? "no data" };
      return [t, fmt(s.ttfb_p50, 3), fmt(s.ttfb_p90, 3), fmt(s.added_ttfb, 3, true),
        t === "direct" ? "" : fmt(s.vs_floor_ttfb, 3, true), `${pct(s.merged_share)} (${s.merged}/${s.gaps})`,
        fmt(s.total_p50, 1), `${s.failed}/${s.requests}`];
    });
    out.push({
      title: `Streaming: ${result.settings.mock_knobs.reply_words} content chunks ${result.settings.mock_knobs.token_gap_ms} ms apart, ${result.settings.stream_requests} requests per target per round`,
      note: "TTFB = request start to the first `data:` event; merged = consecutive content events < 1 ms apart; +TTFB over direct, paired per round; stream ms = request start to the end of the stream (p50)",
      head,
      rows,
    });
  }

  {
    const c = summary.cache;
    const rows = c.status === "ok"
      ? [
          ["meridian cache HIT", fmt(c.p50, 3), fmt(c.p90, 3), fmt(c.p99, 3), fmtInt(c.rps)],
          ...(c.miss
            ? [
                ["meridian cache MISS (unique prompts)", fmt(c.miss.p50, 3), "", fmt(c.miss.p99, 3), ""],
                ["meridian, cache off (same prompts)", fmt(c.miss.plain_p50, 3), "", fmt(c.miss.plain_p99, 3), ""],
                ["MISS overhead (paired)", `+${fmt(c.miss.overhead_p50, 3)}`, "", `+${fmt(c.miss.overhead_p99, 3)}`, ""],
              ]
            : []),
        ]
      : [{ name: "cache", span: `cache: ${c.status}` }];
    out.push({ title: "Cache (non-streaming, c=1)", note: c.note, head: ["target", "p50 ms", "p90 ms", "p99 ms", "req/s"], rows });
  }

  {
    const head = ["target", "start→first response ms", "first request ms", "listening ms", "restarts"];
    const rows = Object.keys(summary.cold).map((t) => {
      const s = summary.cold[t];
      if (s.status !== "ok") return { name: t, span: s.status };
      return [t, fmt(s.start_to_first_response, 1), fmt(s.first_request, 2), fmt(s.listening, 1), `${s.n}${s.note ? ` (${s.note})` : ""}`];
    });
    out.push({
      title: "Cold start (process start to first response; medians)",
      note: "first request = a fresh connection's first POST once the port accepts; workers: workerd serve of the upload",
      head,
      rows,
    });
  }

  {
    const head = ["target", "raw KiB", "gzip KiB", "files"];
    const rows = Object.keys(summary.bundle).map((t) => {
      const b = summary.bundle[t];
      if (b.status !== "ok") return { name: t, span: b.status };
      return [t, kib(b.raw), kib(b.gzip), b.files.map((f) => f.name.replace(/^[0-9a-f]{40}-/, "<hash>-")).join(", ")];
    });
    out.push({ title: "Bundle: what `wrangler deploy` uploads (gzip -9 per file, summed)", note: "", head, rows });
  }
  return out;
}

function pad(cells, widths) {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
}

export function renderText(result) {
  const lines = [];
  const m = result.machine;
  lines.push(`Meridian benchmark, ${result.started_at} (${result.duration_s.toFixed(0)} s)`);
  lines.push(`machine: ${m.nproc} × ${m.cpu}, ${m.mem_gib} GiB, Linux ${m.kernel}, load avg at start ${m.loadavg_start}`);
  lines.push(`versions: workerd ${m.versions.workerd}, node ${m.versions.node}, wrangler ${m.versions.wrangler}, ${m.versions.wrk}, litellm ${m.versions.litellm}, portkey ${m.versions.portkey}, meridian ${m.versions.meridian}`);
  lines.push(`rounds: ${result.settings.rounds} (orders: ${result.rounds.map((r) => r.order.join(" ")).join(" | ")})`);
  for (const t of result.settings.targets) lines.push(`  ${t.padEnd(10)} ${result.targets[t].mode}${result.targets[t].status !== "ok" ? ` — ${result.targets[t].status}` : ""}`);
  for (const s of sections(result)) {
    lines.push("", s.title);
    if (s.note) lines.push(`  (${s.note})`);
    const rows = s.rows.filter((r) => Array.isArray(r));
    const widths = s.head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
    lines.push("  " + pad(s.head, widths));
    for (const r of s.rows) lines.push("  " + (Array.isArray(r) ? pad(r, widths) : `${r.name.padEnd(widths[0])}  ${r.span}`));
  }
  lines.push("", "Targets (performance issue)");
  for (const g of result.goals) lines.push(`  ${g.status.padEnd(7)} ${g.name}: ${g.detail}`);
  if (result.notes.length) {
    lines.push("", "Notes");
    for (const n of result.notes) lines.push(`  - ${n}`);
  }
  return lines.join("\n");
}

export function renderMarkdown(result) {
  const m = result.machine;
  const lines = [];
  lines.push(`# Meridian benchmark results`, "");
  lines.push(`Run ${result.started_at}, ${result.duration_s.toFixed(0)} s, ${result.settings.rounds} round(s), \`make bench\` (see bench/README.md).`, "");
  lines.push(`Machine: ${m.nproc} × ${m.cpu}, ${m.mem_gib} GiB, Linux ${m.kernel}; load average at start ${m.loadavg_start}.  `);
  lines.push(`Versions: workerd ${m.versions.workerd}, node ${m.versions.node}, wrangler ${m.versions.wrangler}, ${m.versions.wrk}, litellm ${m.versions.litellm}, @portkey-ai/gateway ${m.versions.portkey}, meridian ${m.versions.meridian}.`, "");
  lines.push("| target | how it ran |", "| --- | --- |");
  for (const t of result.settings.targets) lines.push(`| ${t} | ${result.targets[t].mode}${result.targets[t].status !== "ok" ? ` — **${result.targets[t].status}**` : ""} |`);
  for (const s of sections(result)) {
    lines.push("", `## ${s.title}`, "");
    if (s.note) lines.push(`${s.note[0].toUpperCase()}${s.note.slice(1)}.`, "");
    lines.push(`| ${s.head.join(" | ")} |`, `| ${s.head.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`);
    for (const r of s.rows) {
      lines.push(Array.isArray(r) ? `| ${r.join(" | ")} |` : `| ${r.name} | ${r.span} |${" |".repeat(Math.max(0, s.head.length - 2))}`);
    }
  }
  lines.push("", "## Targets (performance issue)", "", "| | target | measured |", "| --- | --- | --- |");
  for (const g of result.goals) lines.push(`| ${g.status} | ${g.name} | ${g.detail} |`);
  if (result.notes.length) {
    lines.push("", "## Notes", "");
    for (const n of result.notes) lines.push(`- ${n}`);
  }
  return lines.join("\n") + "\n";
}
