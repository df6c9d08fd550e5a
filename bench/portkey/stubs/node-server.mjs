// Portkey's Node entry point starts @hono/node-server; the worker build exports the app instead (see ../build.mjs).
export function serve() {
  throw new Error("@hono/node-server is not available in workerd");
}
