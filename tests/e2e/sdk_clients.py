"""The official openai and anthropic Python SDKs against every provider kind, through the compiled worker.

Run by python_sdks.test.mjs, which starts the mock provider and the worker and passes their addresses in
MERIDIAN_URL, MOCK_CONTROL and MERIDIAN_KINDS. Content and usage are asserted exactly: the mock's replies are
deterministic (see mock/README.md).
"""

import json
import os
import unittest
import urllib.request

import anthropic
import openai

URL = os.environ["MERIDIAN_URL"]
CONTROL = os.environ["MOCK_CONTROL"]
KINDS = os.environ["MERIDIAN_KINDS"].split(",")
TEXT = "hello across vendors"
ECHO = "Echo: " + TEXT
TOOL_RESULT = "18C and sunny in Paris"
MODELS = {
    "openai": "gpt-4o-mini",
    "azure": "gpt-4o-deploy",
    "anthropic": "claude-sonnet-4-5",
    "bedrock": "anthropic.claude-3-haiku-20240307-v1:0",
    "gemini": "gemini-2.5-flash",
}

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        },
    }
]
ANTHROPIC_TOOLS = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }
]


def mock(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(CONTROL + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def last_request_body(kind):
    return json.dumps(mock("GET", "/_mock/stats")["regions"][kind]["last_request"]["body"])


def final_text_after_tool(kind):
    # The mock echoes the last user *text*. OpenAI-wire providers keep the original question as the last user
    # message (the tool result travels in a `tool` message); the others carry the result in a user turn
    # without text, which the mock answers with a bare "Echo:".
    return "Echo: call get_weather Paris" if kind in ("openai", "azure") else "Echo:"


class OpenAISDK(unittest.TestCase):
    client = openai.OpenAI(base_url=URL + "/v1", api_key="demo", max_retries=0)

    def setUp(self):
        mock("POST", "/_mock/reset", {})

    def test_plain_text(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                r = self.client.chat.completions.create(model=kind, messages=[{"role": "user", "content": TEXT}])
                self.assertEqual(r.choices[0].message.content, ECHO)
                self.assertEqual(r.choices[0].finish_reason, "stop")
                self.assertEqual((r.usage.prompt_tokens, r.usage.completion_tokens), (3, 4))

    def test_streaming(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                stream = self.client.chat.completions.create(
                    model=kind,
                    messages=[{"role": "user", "content": TEXT}],
                    stream=True,
                    stream_options={"include_usage": True},
                )
                text, usage, finish, chunks = "", None, None, 0
                for chunk in stream:
                    chunks += 1
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                        finish = chunk.choices[0].finish_reason or finish
                    if chunk.usage:
                        usage = chunk.usage
                self.assertEqual(text, ECHO)
                self.assertEqual(finish, "stop")
                self.assertEqual((usage.prompt_tokens, usage.completion_tokens), (3, 4))
                self.assertGreaterEqual(chunks, 5, "tokens arrive as separate chunks")

    def test_tool_call_round_trip(self):
        for kind in KINDS:
            for stream in (False, True):
                with self.subTest(kind=kind, stream=stream):
                    messages = [{"role": "user", "content": "call get_weather Paris"}]
                    if stream:
                        name, args, call_id, finish = None, "", None, None
                        for chunk in self.client.chat.completions.create(
                            model=kind, messages=messages, tools=OPENAI_TOOLS, stream=True
                        ):
                            if not chunk.choices:
                                continue
                            for tc in chunk.choices[0].delta.tool_calls or []:
                                call_id = call_id or tc.id
                                name = name or (tc.function and tc.function.name)
                                args += (tc.function and tc.function.arguments) or ""
                            finish = chunk.choices[0].finish_reason or finish
                    else:
                        r = self.client.chat.completions.create(model=kind, messages=messages, tools=OPENAI_TOOLS)
                        call = r.choices[0].message.tool_calls[0]
                        name, args, call_id = call.function.name, call.function.arguments, call.id
                        finish = r.choices[0].finish_reason
                        self.assertEqual(r.usage.completion_tokens, 3)
                    self.assertEqual(name, "get_weather")
                    self.assertEqual(json.loads(args), {"query": "Paris"})
                    self.assertEqual(finish, "tool_calls")
                    self.assertTrue(call_id)

                    messages += [
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
                            ],
                        },
                        {"role": "tool", "tool_call_id": call_id, "content": TOOL_RESULT},
                    ]
                    r = self.client.chat.completions.create(model=kind, messages=messages, tools=OPENAI_TOOLS)
                    self.assertEqual(r.choices[0].message.content, final_text_after_tool(kind))
                    self.assertEqual(r.choices[0].finish_reason, "stop")
                    self.assertIn(TOOL_RESULT, last_request_body(kind), "the tool result reached the provider")


class AnthropicSDK(unittest.TestCase):
    client = anthropic.Anthropic(base_url=URL, api_key="demo", max_retries=0)

    def setUp(self):
        mock("POST", "/_mock/reset", {})

    def test_plain_text(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                m = self.client.messages.create(
                    model=kind, max_tokens=100, messages=[{"role": "user", "content": TEXT}]
                )
                self.assertEqual([b.type for b in m.content], ["text"])
                self.assertEqual(m.content[0].text, ECHO)
                self.assertEqual(m.stop_reason, "end_turn")
                # The model that answered (the provider's), not the alias asked for.
                self.assertEqual(m.model, MODELS[kind])
                self.assertEqual((m.usage.input_tokens, m.usage.output_tokens), (3, 4))

    def test_streaming(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                with self.client.messages.stream(
                    model=kind, max_tokens=100, messages=[{"role": "user", "content": TEXT}]
                ) as stream:
                    deltas = [t for t in stream.text_stream]
                    final = stream.get_final_message()
                self.assertEqual("".join(deltas), ECHO)
                self.assertGreaterEqual(len(deltas), 4, "tokens arrive as separate deltas")
                self.assertEqual(final.stop_reason, "end_turn")
                self.assertEqual(final.usage.output_tokens, 4)

    def test_tool_call_round_trip(self):
        for kind in KINDS:
            for stream in (False, True):
                with self.subTest(kind=kind, stream=stream):
                    messages = [{"role": "user", "content": "call get_weather Paris"}]
                    if stream:
                        with self.client.messages.stream(
                            model=kind, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS
                        ) as s:
                            m = s.get_final_message()
                    else:
                        m = self.client.messages.create(
                            model=kind, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS
                        )
                    uses = [b for b in m.content if b.type == "tool_use"]
                    self.assertEqual(len(uses), 1, m)
                    self.assertEqual(uses[0].name, "get_weather")
                    self.assertEqual(uses[0].input, {"query": "Paris"})
                    self.assertEqual(m.stop_reason, "tool_use")
                    self.assertEqual(m.usage.output_tokens, 3)

                    messages += [
                        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in m.content]},
                        {
                            "role": "user",
                            "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": TOOL_RESULT}],
                        },
                    ]
                    m = self.client.messages.create(
                        model=kind, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS
                    )
                    self.assertEqual(m.content[0].text, final_text_after_tool(kind))
                    self.assertEqual(m.stop_reason, "end_turn")
                    self.assertIn(TOOL_RESULT, last_request_body(kind), "the tool result reached the provider")

    def test_errors_are_anthropic_exceptions(self):
        with self.assertRaises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=URL, api_key="wrong", max_retries=0).messages.create(
                model=KINDS[0], max_tokens=10, messages=[{"role": "user", "content": "x"}]
            )
        with self.assertRaises(anthropic.NotFoundError):
            self.client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])


if __name__ == "__main__":
    unittest.main(verbosity=2)
