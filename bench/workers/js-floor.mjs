// The floor: the least a JavaScript worker can do to forward a request. Every gateway in the benchmark runs at
// least this much code on the same runtime (workerd), so "added over the floor" is what the gateway itself costs.
// UPSTREAM (a text binding) is the mock provider's origin, e.g. http://127.0.0.1:PORT.
export default {
  fetch(req, env) {
    const u = new URL(req.url);
    return fetch(env.UPSTREAM + u.pathname, { method: req.method, headers: req.headers, body: req.body });
  },
};
