// The net under a panic. Panics abort: the instance traps inside the microtask that was polling a request, the
// `worker` crate schedules a fresh instance for the next call, and the promise of every request that was
// waiting would never settle. The panic hook (src/edge/mod.rs) calls `panicked`, which rejects them all;
// worker/entry.mjs answers each with a JSON 500. JavaScript because the trapped instance can run nothing more.

const owed = new Set();

export function panicked() {
  const all = [...owed];
  owed.clear();
  for (const fail of all) fail(new Error("the gateway panicked"));
}

/** `answer` (a promise from the wasm), rejected instead if the instance panics before it settles. */
export function guarded(answer) {
  return new Promise((resolve, reject) => {
    owed.add(reject);
    answer.then(
      (v) => {
        owed.delete(reject);
        resolve(v);
      },
      (e) => {
        owed.delete(reject);
        reject(e);
      },
    );
  });
}
