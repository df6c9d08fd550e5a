// A reference, not a peer: the least a gateway that reads what it forwards must do, in plain JavaScript. It parses
// the request (a gateway routes by its model), reads a non-streamed answer whole and parses it (a gateway checks it
// and reads its usage before answering 200), and passes a stream on chunk by chunk through JavaScript (a gateway
// looks at each event). The floor does none of this: its bodies never enter JavaScript. The gap between the floor
// and this worker is the runtime's price for reading bodies (promises, buffers, garbage collection), which every
// gateway on workerd pays before doing any work of its own. UPSTREAM (a text binding) is the mock's origin.
const json = (status, message) =>
  new Response(JSON.stringify({ error: { message, type: "invalid_request_error" } }), { status, headers: { "content-type": "application/json" } });

export default {
  async fetch(req, env) {
    const body = await req.arrayBuffer();
    let stream;
    try {
      stream = JSON.parse(new TextDecoder().decode(body)).stream === true;
    } catch {
      return json(400, "the body is not JSON");
    }
    const upstream = await fetch(env.UPSTREAM + new URL(req.url).pathname, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: req.headers.get("authorization") ?? "" },
      body,
    });
    if (!stream || upstream.body === null) {
      const answer = await upstream.arrayBuffer();
      try {
        JSON.parse(new TextDecoder().decode(answer));
      } catch {
        return json(502, "the provider's answer is not JSON");
      }
      return new Response(answer, { status: upstream.status, headers: { "content-type": "application/json" } });
    }
    const reader = upstream.body.getReader();
    const out = new ReadableStream({
      async pull(controller) {
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(out, { status: upstream.status, headers: { "content-type": "text/event-stream" } });
  },
};
