// The JavaScript half of the edge glue. Every call between wasm and JavaScript costs a crossing, string transcoding
// and often a closure; the generic bindings pay that per header, per property and per object (and read request.cf,
// which the runtime rebuilds on every access, more than once). These helpers do each platform step in one call, so
// a proxied request crosses about a dozen times instead of about a hundred (bench/profile.mjs shows the split).
//
// Header lists travel as one string, "name\nvalue\n" per header: the Fetch standard forbids CR, LF and NUL in
// header names and values, so the separator cannot occur inside one.

function headerLines(headers) {
  let out = "";
  for (const [name, value] of headers) out += name + "\n" + value + "\n";
  return out;
}

function headersFrom(lines) {
  const h = new Headers();
  const parts = lines.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) h.append(parts[i], parts[i + 1]);
  return h;
}

function field(v) {
  return v === undefined || v === null ? "" : String(v);
}

/** "METHOD\npath\ncolo\nlatitude\nlongitude\n" followed by the header lines; the query string is not part of path. */
export function requestHead(req) {
  const url = req.url;
  const scheme = url.indexOf("://");
  let start = url.indexOf("/", scheme < 0 ? 0 : scheme + 3);
  let path = start < 0 ? "/" : url.slice(start);
  const cut = path.search(/[?#]/);
  if (cut >= 0) path = path.slice(0, cut);
  const cf = req.cf;
  const loc = cf && typeof cf === "object" ? field(cf.colo) + "\n" + field(cf.latitude) + "\n" + field(cf.longitude) : "\n\n";
  return req.method + "\n" + path + "\n" + loc + "\n" + headerLines(req.headers);
}

/** The request body as bytes (empty for none). */
export async function requestBody(req) {
  if (req.body === null) return new Uint8Array(0);
  return new Uint8Array(await req.arrayBuffer());
}

/** Starts a fetch; `body` is a view into wasm memory (copied here), `signal` an AbortSignal or undefined. */
export function send(url, method, lines, body, signal) {
  const init = { method, headers: headersFrom(lines) };
  if (body.length > 0) init.body = body.slice();
  if (signal) init.signal = signal;
  return fetch(url, init);
}

/** "status\n" followed by the header lines. */
export function responseHead(resp) {
  return resp.status + "\n" + headerLines(resp.headers);
}

/** The whole body in one read (no per-chunk crossings); empty when there is none. */
export async function responseBytes(resp) {
  if (resp.body === null) return new Uint8Array(0);
  return new Uint8Array(await resp.arrayBuffer());
}

/** The body stream, or null. */
export function responseStream(resp) {
  return resp.body;
}

/** A response with a body copied out of wasm memory (`bytes` is a view), a stream, or nothing. */
export function respondBytes(status, lines, bytes) {
  return new Response(bytes.slice(), { status, headers: headersFrom(lines) });
}

export function respondStream(status, lines, stream) {
  return new Response(stream, { status, headers: headersFrom(lines) });
}

export function respondEmpty(status, lines) {
  return new Response(null, { status, headers: headersFrom(lines) });
}
