"""Fidelity through the official openai and anthropic Python SDKs: what a client sends reaches the provider and
what the provider says reaches the client, in both dialects, streamed and not.

Run by fidelity.test.mjs (MERIDIAN_URL, MOCK_CONTROL, FIXTURES). Provider answers that the mock does not make up
itself are recorded real traffic (tests/fixtures/SOURCES.md), replayed by the mock's raw_body / raw_chunks knobs.
"""

import json
import os
import unittest
import urllib.request

import anthropic
import openai

URL = os.environ["MERIDIAN_URL"]
CONTROL = os.environ["MOCK_CONTROL"]
FIXTURES = os.environ["FIXTURES"]
REFUSAL = "I'm very sorry, but I can't assist with that."
STREAM_REFUSAL = "I'm sorry, I can't assist with that request."
AZURE_ID = "chatcmpl-BleatwEUn3D8iXsgXpDqeOPEMuW3j"
DOC = "a long shared document that many requests start with"
DOC_WORDS = len(DOC.split())

ANTHROPIC = anthropic.Anthropic(base_url=URL, api_key="demo", max_retries=0)
OPENAI = openai.OpenAI(base_url=URL + "/v1", api_key="demo", max_retries=0)


def mock(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(CONTROL + path, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


def knobs(region, **k):
    mock("POST", "/_mock/regions/" + region, k)


def fixture(path):
    with open(os.path.join(FIXTURES, path), encoding="utf-8") as f:
        return f.read()


def sse_fixture(path):
    # Recordings kept in source text may have lost the wire's final blank line.
    return fixture(path).rstrip("\n") + "\n\n"


def last_request(region):
    return mock("GET", "/_mock/stats")["regions"][region]["last_request"]


class Base(unittest.TestCase):
    def setUp(self):
        mock("POST", "/_mock/reset", {})


class SameWire(Base):
    """Anthropic dialect to an Anthropic provider: everything reaches it, and its answer comes back as sent."""

    def test_everything_sent_reaches_anthropic(self):
        for stream in (False, True):
            with self.subTest(stream=stream):
                kwargs = dict(
                    model="anthropic",
                    max_tokens=2048,
                    thinking={"type": "enabled", "budget_tokens": 1024},
                    metadata={"user_id": "u-1"},
                    system=[{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
                    messages=[
                        {"role": "user", "content": "first"},
                        {
                            "role": "assistant",
                            "content": [
                                {"type": "thinking", "thinking": "Let me think.", "signature": "EqQBCgIYAhIM"},
                                {"type": "text", "text": "ok"},
                            ],
                        },
                        {"role": "user", "content": "second"},
                    ],
                    extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
                    # Fields this SDK version does not declare go as extra body members, as they would in an application.
                    extra_body={"output_config": {"effort": "low"}, "top_k": 5},
                )
                if stream:
                    with ANTHROPIC.messages.stream(**kwargs) as s:
                        s.get_final_message()
                else:
                    ANTHROPIC.messages.create(**kwargs)
                req = last_request("anthropic")
                body = req["body"]
                self.assertEqual(body["model"], "claude-sonnet-4-5")
                self.assertEqual(body["top_k"], 5)
                self.assertEqual(body["thinking"], {"type": "enabled", "budget_tokens": 1024})
                self.assertEqual(body["metadata"], {"user_id": "u-1"})
                self.assertEqual(body["output_config"], {"effort": "low"})
                self.assertEqual(body["system"][0]["cache_control"], {"type": "ephemeral"})
                self.assertEqual(body["messages"][1]["content"][0]["signature"], "EqQBCgIYAhIM")
                headers = {k.lower(): v for k, v in req["headers"].items()}
                self.assertEqual(headers["anthropic-beta"], "interleaved-thinking-2025-05-14")

    def test_thinking_and_stop_sequences_come_back(self):
        knobs("anthropic", raw_body=fixture("anthropic/thinking_response.json"), raw_content_type="application/json")
        m = ANTHROPIC.messages.create(model="anthropic", max_tokens=100, messages=[{"role": "user", "content": "x"}])
        self.assertEqual([b.type for b in m.content], ["thinking", "text"])
        self.assertTrue(m.content[0].signature)
        knobs("anthropic", raw_body=None, raw_chunks=[{"text": sse_fixture("anthropic/stream_thinking.sse")}])
        with ANTHROPIC.messages.stream(model="anthropic", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
        self.assertEqual(final.content[0].type, "thinking")
        self.assertTrue(final.content[0].signature)
        self.assertEqual(final.id, "msg_01Eg56TYRnKCEgWtZu2yjR1t")

        knobs("anthropic", raw_chunks=None, raw_body=fixture("anthropic/stop_sequence_response.json"))
        m = ANTHROPIC.messages.create(model="anthropic", max_tokens=100, messages=[{"role": "user", "content": "x"}])
        self.assertEqual((m.stop_reason, m.stop_sequence), ("stop_sequence", "Paris"))
        knobs("anthropic", raw_body=None, raw_chunks=[{"text": sse_fixture("anthropic/stream_stop_sequence.sse")}])
        with ANTHROPIC.messages.stream(model="anthropic", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
        self.assertEqual((final.stop_reason, final.stop_sequence), ("stop_sequence", "```"))


class PromptCaching(Base):
    """A prefix marked for caching reaches Anthropic and Bedrock marked; the cached counts come back."""

    def anthropic_call(self, kind, stream, question):
        kwargs = dict(
            model=kind,
            max_tokens=50,
            system=[{"type": "text", "text": DOC, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": question}],
        )
        if stream:
            with ANTHROPIC.messages.stream(**kwargs) as s:
                return s.get_final_message().usage
        return ANTHROPIC.messages.create(**kwargs).usage

    def openai_call(self, kind, stream, question):
        kwargs = dict(
            model=kind,
            messages=[
                {"role": "system", "content": [{"type": "text", "text": DOC, "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": question},
            ],
        )
        if stream:
            usage = None
            for chunk in OPENAI.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs):
                usage = chunk.usage or usage
            return usage
        return OPENAI.chat.completions.create(**kwargs).usage

    def test_anthropic_dialect(self):
        for kind in ("anthropic", "bedrock"):
            for stream in (False, True):
                with self.subTest(kind=kind, stream=stream):
                    mock("POST", "/_mock/reset", {})
                    first = self.anthropic_call(kind, stream, "one two")
                    self.assertEqual(first.cache_creation_input_tokens, DOC_WORDS)
                    self.assertEqual(first.cache_read_input_tokens or 0, 0)
                    self.assertEqual(first.input_tokens, 2)
                    second = self.anthropic_call(kind, stream, "three four five")
                    self.assertEqual(second.cache_read_input_tokens, DOC_WORDS)
                    self.assertEqual(second.input_tokens, 3)
                    sent = json.dumps(last_request(kind)["body"])
                    self.assertIn("cache_control" if kind == "anthropic" else "cachePoint", sent)

    def test_openai_dialect(self):
        for kind in ("anthropic", "bedrock"):
            for stream in (False, True):
                with self.subTest(kind=kind, stream=stream):
                    mock("POST", "/_mock/reset", {})
                    self.openai_call(kind, stream, "one two")
                    second = self.openai_call(kind, stream, "three four five")
                    self.assertEqual(second.prompt_tokens, DOC_WORDS + 3)
                    self.assertEqual(second.prompt_tokens_details.cached_tokens, DOC_WORDS)


class Refusals(Base):
    """An OpenAI refusal reaches an Anthropic client as its text with stop_reason refusal."""

    def test_refusal_in_both_dialects(self):
        knobs("openai", raw_body=fixture("openai/refusal_response.json"), raw_content_type="application/json")
        m = ANTHROPIC.messages.create(model="openai", max_tokens=100, messages=[{"role": "user", "content": "x"}])
        self.assertEqual(m.content[0].text, REFUSAL)
        self.assertEqual(m.stop_reason, "refusal")
        r = OPENAI.chat.completions.create(model="openai", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(r.choices[0].message.refusal, REFUSAL)

        knobs("openai", raw_body=None, raw_chunks=[{"text": sse_fixture("openai/stream_refusal.sse")}])
        with ANTHROPIC.messages.stream(model="openai", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        self.assertEqual(text, STREAM_REFUSAL)
        self.assertEqual(final.stop_reason, "refusal")
        refusal = ""
        for chunk in OPENAI.chat.completions.create(model="openai", messages=[{"role": "user", "content": "x"}], stream=True):
            if chunk.choices:
                refusal += chunk.choices[0].delta.refusal or ""
        self.assertEqual(refusal, STREAM_REFUSAL)


class Errors(Base):
    """Errors keep their meaning and each dialect's status."""

    def test_overloaded(self):
        knobs("anthropic", status=529, error_body=fixture("anthropic/overloaded_error.json"))
        with self.assertRaises(anthropic.APIStatusError) as e:
            ANTHROPIC.messages.create(model="anthropic", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.status_code, 529)
        self.assertEqual(e.exception.body["error"]["type"], "overloaded_error")
        with self.assertRaises(openai.InternalServerError) as e:
            OPENAI.chat.completions.create(model="anthropic", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.status_code, 503)
        self.assertEqual(e.exception.code, "upstream_overloaded")

    def test_overloaded_mid_stream(self):
        start = (
            'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
            '"role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,'
            '"usage":{"input_tokens":9,"output_tokens":1}}}\n\n'
            'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            '"content_block":{"type":"text","text":""}}\n\n'
            'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            '"delta":{"type":"text_delta","text":"Hel"}}\n\n'
        )
        error = 'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
        knobs("anthropic", raw_chunks=[{"text": start}, {"text": error}])
        got = ""
        with self.assertRaises(anthropic.APIStatusError) as e:
            with ANTHROPIC.messages.stream(model="anthropic", max_tokens=10, messages=[{"role": "user", "content": "x"}]) as s:
                for t in s.text_stream:
                    got += t
        self.assertEqual(got, "Hel")
        self.assertEqual(e.exception.body["error"]["type"], "overloaded_error")
        got = ""
        with self.assertRaises(openai.APIError) as e:
            for chunk in OPENAI.chat.completions.create(
                model="anthropic", messages=[{"role": "user", "content": "x"}], stream=True
            ):
                if chunk.choices:
                    got += chunk.choices[0].delta.content or ""
        self.assertEqual(got, "Hel")
        self.assertIn("overloaded", str(e.exception))

    def test_context_length(self):
        body = json.loads(fixture("anthropic/errors.json"))[0]["body"]
        knobs("anthropic", status=400, error_body=body)
        with self.assertRaises(openai.BadRequestError) as e:
            OPENAI.chat.completions.create(model="anthropic", messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.code, "context_length_exceeded")
        self.assertIn("prompt is too long", e.exception.message)
        with self.assertRaises(anthropic.BadRequestError) as e:
            ANTHROPIC.messages.create(model="anthropic", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.body["error"]["type"], "invalid_request_error")
        self.assertIn("prompt is too long", e.exception.message)


class Ids(Base):
    """Azure's content-filter opening chunk is not the answer's start; the model is the one that answered."""

    def test_azure_first_chunk(self):
        knobs("azure", raw_chunks=[{"text": sse_fixture("azure/stream_content_filter.sse")}])
        with ANTHROPIC.messages.stream(model="azure", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        self.assertEqual(final.id, AZURE_ID)
        self.assertEqual(final.model, "gpt-4o-2024-08-06")
        self.assertEqual(text, "Hallo Welt!")

    def test_azure_streams_open_with_the_content_filter_chunk_and_the_id_is_the_answers(self):
        # The mock opens every Azure stream with the prompt's content-filter results, as Azure does.
        with ANTHROPIC.messages.stream(model="azure", max_tokens=100, messages=[{"role": "user", "content": "hi"}]) as s:
            final = s.get_final_message()
        self.assertTrue(final.id.startswith("chatcmpl"), final.id)
        self.assertEqual(final.content[0].text, "Echo: hi")
        text = ""
        for chunk in OPENAI.chat.completions.create(model="azure", messages=[{"role": "user", "content": "hi"}], stream=True):
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        self.assertEqual(text, "Echo: hi")

    def test_model_is_the_one_that_answered(self):
        models = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
        for kind, model in models.items():
            with self.subTest(kind=kind):
                m = ANTHROPIC.messages.create(model=kind, max_tokens=10, messages=[{"role": "user", "content": "x"}])
                self.assertEqual(m.model, model)
                r = OPENAI.chat.completions.create(model=kind, messages=[{"role": "user", "content": "x"}])
                self.assertEqual(r.model, model)


class Reasoning(Base):
    """Reasoning reaches clients of the other dialect; reasoning settings map both ways."""

    def test_reasoning_reaches_the_other_dialect(self):
        knobs("bedrock", raw_body=fixture("bedrock/converse_reasoning.json"), raw_content_type="application/json")
        m = ANTHROPIC.messages.create(model="bedrock", max_tokens=100, messages=[{"role": "user", "content": "x"}])
        self.assertEqual([b.type for b in m.content], ["thinking", "text"])
        self.assertTrue(m.content[0].thinking.startswith("Let me count the r's"))
        self.assertTrue(m.content[0].signature.startswith("EvYBCkgI"))

        knobs("openai", raw_chunks=[{"text": sse_fixture("openai_compat/reasoning_content_stream.sse")}])
        with ANTHROPIC.messages.stream(model="openai", max_tokens=100, messages=[{"role": "user", "content": "x"}]) as s:
            final = s.get_final_message()
        self.assertEqual(final.content[0].type, "thinking")
        self.assertTrue(final.content[0].thinking.startswith("H"))

        knobs("anthropic", raw_body=fixture("anthropic/thinking_response.json"), raw_content_type="application/json")
        r = OPENAI.chat.completions.create(model="anthropic", messages=[{"role": "user", "content": "x"}])
        message = r.choices[0].message
        self.assertTrue(message.model_extra["reasoning_content"].startswith("I need to find all roots"))
        self.assertTrue(message.content.startswith("## Step 1"))

        knobs("gemini", raw_body=fixture("gemini/thought_parts.json"), raw_content_type="application/json")
        r = OPENAI.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "x"}])
        self.assertTrue(r.choices[0].message.model_extra["reasoning_content"].startswith("**A Safe Street-Crossing"))

    def test_the_mock_reasons_when_asked_and_every_dialect_sees_it(self):
        question = "why is the sky blue"
        for kind in ("anthropic", "bedrock", "gemini"):
            for stream in (False, True):
                with self.subTest(kind=kind, stream=stream):
                    kwargs = dict(
                        model=kind,
                        max_tokens=20000,
                        thinking={"type": "enabled", "budget_tokens": 2048},
                        messages=[{"role": "user", "content": question}],
                    )
                    if stream:
                        with ANTHROPIC.messages.stream(**kwargs) as s:
                            m = s.get_final_message()
                    else:
                        m = ANTHROPIC.messages.create(**kwargs)
                    self.assertEqual([b.type for b in m.content], ["thinking", "text"])
                    self.assertEqual(m.content[0].thinking, "Reasoning about: " + question)
                    signed = kind != "gemini"
                    self.assertEqual(m.content[0].signature.startswith("mock-signature-"), signed)
                    if kind == "bedrock":
                        # The signed reasoning goes back to Bedrock with the next turn.
                        history = [{"role": "user", "content": question},
                                   {"role": "assistant", "content": [b.model_dump() for b in m.content]},
                                   {"role": "user", "content": "and at sunset"}]
                        ANTHROPIC.messages.create(model=kind, max_tokens=20000, messages=history,
                                                  thinking={"type": "enabled", "budget_tokens": 2048})
                        sent = last_request(kind)["body"]["messages"][1]["content"][0]
                        self.assertEqual(sent["reasoningContent"]["reasoningText"]["signature"], m.content[0].signature)
        for kind in ("anthropic", "gemini"):
            with self.subTest(kind=kind, client="openai"):
                r = OPENAI.chat.completions.create(
                    model=kind, reasoning_effort="low", messages=[{"role": "user", "content": question}]
                )
                self.assertEqual(r.choices[0].message.model_extra["reasoning_content"], "Reasoning about: " + question)
                reasoning = ""
                for chunk in OPENAI.chat.completions.create(
                    model=kind, reasoning_effort="low", messages=[{"role": "user", "content": question}], stream=True
                ):
                    if chunk.choices:
                        reasoning += (chunk.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                self.assertEqual(reasoning, "Reasoning about: " + question)

    def test_reasoning_settings_map(self):
        OPENAI.chat.completions.create(
            model="anthropic", reasoning_effort="high", max_tokens=1000, messages=[{"role": "user", "content": "x"}]
        )
        body = last_request("anthropic")["body"]
        self.assertEqual(body["thinking"], {"type": "enabled", "budget_tokens": 16384})
        self.assertGreater(body["max_tokens"], 16384)
        ANTHROPIC.messages.create(
            model="openai",
            max_tokens=20000,
            thinking={"type": "enabled", "budget_tokens": 2048},
            messages=[{"role": "user", "content": "x"}],
        )
        self.assertEqual(last_request("openai")["body"]["reasoning_effort"], "low")


class UnsupportedParameters(Base):
    """A field without an equivalent is refused by name, in the caller's dialect."""

    def test_refused_by_name(self):
        with self.assertRaises(openai.BadRequestError) as e:
            OPENAI.chat.completions.create(model="bedrock", n=2, messages=[{"role": "user", "content": "x"}])
        self.assertEqual(e.exception.code, "unsupported_parameter")
        self.assertIn("`n`", e.exception.message)
        with self.assertRaises(anthropic.BadRequestError) as e:
            ANTHROPIC.messages.create(
                model="openai", max_tokens=10, messages=[{"role": "user", "content": "x"}], extra_body={"top_k": 5}
            )
        self.assertEqual(e.exception.body["error"]["type"], "invalid_request_error")
        self.assertIn("`top_k`", e.exception.message)


if __name__ == "__main__":
    unittest.main(verbosity=2)
