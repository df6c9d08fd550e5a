// Streaming client on Node's raw http module: one request at a time on one keep-alive connection, timestamping
// every `data:` line when the socket read that completes it arrives.
import http from "node:http";
import { performance } from "node:perf_hooks";

export const MERGED_MS = 1; // two content events closer than this arrived merged (the mock sent them 5 ms apart)

function streamOnce(agent, url, headers, body) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, {
      method: "POST",
      agent,
      headers: { ...headers, "content-length": Buffer.byteLength(body) },
    }, (res) => {
      const tHeaders = performance.now();
      const events = [];
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => {
        const t = performance.now();
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i).replace(/\r$/, "");
          buf = buf.slice(i + 1);
          if (line.startsWith("data:")) events.push({ t, data: line.slice(5).trim() });
        }
      });
      res.on("end", () => resolve({ status: res.statusCode, t0, tHeaders, tEnd: performance.now(), events }));
      res.on("error", reject);
    });
    req.setTimeout(30000, () => req.destroy(new Error("stream: no progress for 30 s")));
    req.on("error", reject);
    req.end(body);
  });
}

/** A content event: an OpenAI chunk with content, or an Anthropic `content_block_delta` with text. */
function isContent(data, dialect) {
  if (data === "[DONE]") return false;
  try {
    const v = JSON.parse(data);
    const c = dialect === "anthropic" ? (v?.type === "content_block_delta" ? v.delta?.text : null) : v?.choices?.[0]?.delta?.content;
    return typeof c === "string" && c.length > 0;
  } catch {
    return false;
  }
}

/** The stream's end marker: `[DONE]`, or Anthropic's `message_stop` event. */
function isEnd(data, dialect) {
  if (dialect !== "anthropic") return data === "[DONE]";
  try {
    return JSON.parse(data)?.type === "message_stop";
  } catch {
    return false;
  }
}

/**
 * Sends `n` streaming requests one after another. Per request: time to the first `data:` event (ttfb), and the
 * arrival gaps between consecutive content events. Returns per-request samples plus failures.
 */
export async function runStreams({ url, headers, body, n, expectContent, dialect = "openai" }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const samples = [];
  const failures = [];
  try {
    for (let i = 0; i < n; i++) {
      let r;
      try {
        r = await streamOnce(agent, url, headers, body);
      } catch (e) {
        failures.push(e.message);
        continue;
      }
      const content = r.events.filter((e) => isContent(e.data, dialect));
      const done = r.events.some((e) => isEnd(e.data, dialect));
      if (r.status !== 200 || r.events.length === 0 || (expectContent && content.length !== expectContent) || !done) {
        failures.push(`status ${r.status}, ${r.events.length} events, ${content.length} content, [DONE] ${done ? "yes" : "no"}`);
        continue;
      }
      const gaps = [];
      for (let j = 1; j < content.length; j++) gaps.push(content[j].t - content[j - 1].t);
      samples.push({
        ttfb: r.events[0].t - r.t0,
        headers: r.tHeaders - r.t0,
        total: r.tEnd - r.t0,
        gaps,
      });
    }
  } finally {
    agent.destroy();
  }
  return { samples, failures };
}
