// Node-only realtime websockets; the worker build uses workerd's own /v1/realtime route instead.
export function createNodeWebSocket() {
  throw new Error("@hono/node-ws is not available in workerd");
}
