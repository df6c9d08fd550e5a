// Node-only websocket client (Portkey's Node realtime route).
export default class WebSocket {
  constructor() {
    throw new Error("ws is not available in workerd");
  }
}
