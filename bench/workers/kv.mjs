// A small in-memory stand-in for Workers KV, served by its own workerd process for the whole run, so the
// MERIDIAN_KV binding is present and what Meridian persists survives its restarts (as KV does across isolates).
// It speaks the HTTP protocol workerd's kvNamespace binding uses: GET/PUT/DELETE /<key> (`?urlencoded=true`
// means the key is percent-encoded), GET / lists. Expiry is not modelled. GET /_bench/stats counts operations.
const store = new Map();
const stats = { get: 0, hit: 0, put: 0, delete: 0, list: 0 };

export default {
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/_bench/stats") return Response.json({ ...stats, keys: store.size });
    let key = url.pathname.slice(1);
    if (url.searchParams.get("urlencoded") === "true") key = decodeURIComponent(key);
    if (req.method === "GET" && key === "") {
      stats.list++;
      const prefix = url.searchParams.get("prefix") ?? "";
      const keys = [...store.keys()].filter((k) => k.startsWith(prefix)).sort().map((name) => ({ name }));
      return Response.json({ keys, list_complete: true, cacheStatus: null });
    }
    if (req.method === "GET") {
      stats.get++;
      const value = store.get(key);
      if (value === undefined) return new Response("Not Found", { status: 404 });
      stats.hit++;
      return new Response(value);
    }
    if (req.method === "PUT") {
      stats.put++;
      store.set(key, await req.arrayBuffer());
      return new Response();
    }
    if (req.method === "DELETE") {
      stats.delete++;
      store.delete(key);
      return new Response();
    }
    return new Response("method not allowed", { status: 405 });
  },
};
