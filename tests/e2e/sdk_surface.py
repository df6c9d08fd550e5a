"""The rest of the API surface through the official openai and anthropic Python SDKs: model lookup, token
counting and embeddings.

Run by api_surface.test.mjs (MERIDIAN_URL, MOCK_CONTROL, MERIDIAN_KINDS).
"""

import json
import os
import unittest

import anthropic
import openai

URL = os.environ["MERIDIAN_URL"]
KINDS = os.environ["MERIDIAN_KINDS"].split(",")
EMBEDDERS = ["emb-openai", "emb-azure", "emb-gemini", "emb-titan", "emb-cohere"]
ANTHROPIC = anthropic.Anthropic(base_url=URL, api_key="demo", max_retries=0)
OPENAI = openai.OpenAI(base_url=URL + "/v1", api_key="demo", max_retries=0)


class Models(unittest.TestCase):
    def test_openai_list_and_retrieve(self):
        ids = [m.id for m in OPENAI.models.list()]
        for kind in KINDS + EMBEDDERS:
            self.assertIn(kind, ids)
            m = OPENAI.models.retrieve(kind)
            self.assertEqual((m.id, m.object), (kind, "model"))
        # A configured provider's model, addressed as `provider/model`.
        self.assertEqual(OPENAI.models.retrieve("mock-openai/gpt-4o").id, "mock-openai/gpt-4o")
        with self.assertRaises(openai.NotFoundError) as e:
            OPENAI.models.retrieve("no-such-model")
        self.assertEqual(e.exception.code, "model_not_found")

    def test_anthropic_list_and_retrieve(self):
        page = ANTHROPIC.models.list()
        ids = [m.id for m in page.data]
        for kind in KINDS:
            self.assertIn(kind, ids)
        self.assertFalse(page.has_more)
        m = ANTHROPIC.models.retrieve("anthropic")
        self.assertEqual((m.id, m.type), ("anthropic", "model"))
        with self.assertRaises(anthropic.NotFoundError) as e:
            ANTHROPIC.models.retrieve("no-such-model")
        self.assertEqual(e.exception.body["error"]["type"], "not_found_error")


class CountTokens(unittest.TestCase):
    """Exact from Anthropic, Bedrock and Gemini (the mock counts the prompt's words); estimated, and marked so,
    for OpenAI-wire deployments, which have no counting endpoint."""

    SYSTEM = "you are terse"
    QUESTION = "how many words are in this question"

    def count(self, kind):
        raw = ANTHROPIC.messages.with_raw_response.count_tokens(
            model=kind, system=self.SYSTEM, messages=[{"role": "user", "content": self.QUESTION}]
        )
        return raw.parse().input_tokens, raw.headers.get("x-meridian-estimated")

    def test_every_kind(self):
        words = len(self.SYSTEM.split()) + len(self.QUESTION.split())
        for kind in KINDS:
            with self.subTest(kind=kind):
                n, estimated = self.count(kind)
                if kind in ("openai", "azure"):
                    self.assertEqual(estimated, "true")
                    self.assertGreater(n, 0)
                else:
                    self.assertIsNone(estimated)
                    self.assertEqual(n, words)

    def test_bad_input_is_a_400_in_anthropics_shape(self):
        with self.assertRaises(anthropic.BadRequestError) as e:
            ANTHROPIC.messages.count_tokens(model="anthropic", messages=[])
        self.assertEqual(e.exception.body["error"]["type"], "invalid_request_error")
        with self.assertRaises(anthropic.NotFoundError):
            ANTHROPIC.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])


class Embeddings(unittest.TestCase):
    def test_every_kind_that_embeds(self):
        for model in EMBEDDERS:
            with self.subTest(model=model):
                inputs = "one two three" if model == "emb-titan" else ["one two", "three"]
                # The SDK asks for base64 unless told otherwise and decodes it: the same vectors as floats.
                decoded = OPENAI.embeddings.create(model=model, input=inputs)
                floats = OPENAI.embeddings.create(model=model, input=inputs, encoding_format="float")
                self.assertEqual(len(decoded.data), 1 if model == "emb-titan" else 2)
                for a, b in zip(decoded.data, floats.data):
                    self.assertEqual(len(a.embedding), len(b.embedding))
                    for x, y in zip(a.embedding, b.embedding):
                        self.assertAlmostEqual(x, y, places=6)
                self.assertGreater(decoded.usage.prompt_tokens, 0)
        small = OPENAI.embeddings.create(model="emb-gemini", input="x", dimensions=4, encoding_format="float")
        self.assertEqual(len(small.data[0].embedding), 4)

    def test_what_a_kind_cannot_embed_is_a_clear_400(self):
        with self.assertRaises(openai.BadRequestError) as e:
            OPENAI.embeddings.create(model="emb-titan", input=["a", "b"])
        self.assertEqual(e.exception.code, "unsupported_input")
        with self.assertRaises(openai.BadRequestError) as e:
            OPENAI.embeddings.create(model="anthropic", input="a")
        self.assertEqual(e.exception.code, "unsupported_input")
        with self.assertRaises(openai.BadRequestError):
            OPENAI.embeddings.create(model="emb-openai", input=[])


RESPONSES_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    }
]


class Responses(unittest.TestCase):
    """The Responses API through the official SDK, on every provider kind (always translated)."""

    def test_plain_streamed_and_continued(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                r = OPENAI.responses.create(model=kind, input="hello across vendors")
                self.assertEqual(r.status, "completed")
                self.assertEqual(r.output_text, "Echo: hello across vendors")
                self.assertEqual(r.usage.input_tokens, 3)
                again = OPENAI.responses.create(model=kind, previous_response_id=r.id, input="and again")
                self.assertEqual(again.output_text, "Echo: and again")
                # The whole conversation reached the provider: both questions and the first answer.
                self.assertGreater(again.usage.input_tokens, r.usage.input_tokens)
                self.assertEqual(OPENAI.responses.retrieve(r.id).id, r.id)
                deltas, completed = [], None
                with OPENAI.responses.stream(model=kind, input="stream this please") as s:
                    for ev in s:
                        if ev.type == "response.output_text.delta":
                            deltas.append(ev.delta)
                        if ev.type == "response.completed":
                            completed = ev.response
                self.assertEqual("".join(deltas), "Echo: stream this please")
                self.assertGreaterEqual(len(deltas), 2)
                self.assertEqual(completed.usage.output_tokens, 4)

    def test_tool_round_trip(self):
        for kind in KINDS:
            with self.subTest(kind=kind):
                r = OPENAI.responses.create(model=kind, input="call get_weather Paris", tools=RESPONSES_TOOLS)
                calls = [o for o in r.output if o.type == "function_call"]
                self.assertEqual(len(calls), 1, r.output)
                self.assertEqual(calls[0].name, "get_weather")
                self.assertEqual(json.loads(calls[0].arguments), {"query": "Paris"})
                follow = OPENAI.responses.create(
                    model=kind,
                    previous_response_id=r.id,
                    tools=RESPONSES_TOOLS,
                    input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"}],
                )
                self.assertEqual(follow.status, "completed")
                self.assertTrue(follow.output_text.startswith("Echo:"))

    def test_errors_and_store_false(self):
        r = OPENAI.responses.create(model="openai", input="not kept", store=False)
        with self.assertRaises(openai.NotFoundError):
            OPENAI.responses.retrieve(r.id)
        with self.assertRaises(openai.NotFoundError):
            OPENAI.responses.create(model="openai", previous_response_id="resp_0000", input="x")
        with self.assertRaises(openai.BadRequestError):
            OPENAI.responses.create(model="openai", input=[])
        deleted = OPENAI.responses.create(model="openai", input="to delete")
        OPENAI.responses.delete(deleted.id)
        with self.assertRaises(openai.NotFoundError):
            OPENAI.responses.retrieve(deleted.id)


if __name__ == "__main__":
    unittest.main(verbosity=2)
