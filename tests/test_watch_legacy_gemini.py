"""watch() and GoogleInstrumentor with the real legacy ``google-generativeai`` SDK
(``GenerativeModel``) talking REST to the local fake provider; assertions on the trace
the local API received.

The legacy SDK's REST transport asks for ``:streamGenerateContent?$alt=json`` and parses
the reply as one JSON array of responses (not SSE), so the fake provider is extended
here to answer that form. ``generate_content_async`` is not covered: the legacy SDK's
async client only works over gRPC (with ``transport="rest"`` it awaits a sync result and
raises ``TypeError``).
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Dict, Iterator, List

import pytest

from infinium._internal.fake_provider.wire import Exchange, pieces, texts, words
from infinium.integrations import GoogleInstrumentor, watch

from .fake_provider import FakeProvider
from .watch_helpers import llm_steps, received

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # "support has ended" on import
    genai = pytest.importorskip("google.generativeai")


class LegacyFakeProvider(FakeProvider):
    """Also answers the legacy REST stream: ``streamGenerateContent`` without
    ``alt=sse`` gets a JSON array of responses (cumulative usage on the last one)."""

    def _gemini(self, x: Exchange, path: str) -> None:
        if not path.endswith(":streamGenerateContent") or "alt=sse" in x.req.path:
            super()._gemini(x, path)
            return
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        contents = x.body.get("contents") or []
        text = self.reply_text(model, " ".join(texts(contents[-1])) if contents else "")
        prompt_tokens = words(texts(contents))
        cut = pieces(text)
        chunks: List[Dict[str, Any]] = []
        for i, piece in enumerate(cut):
            candidate: Dict[str, Any] = {
                "content": {"parts": [{"text": piece}], "role": "model"},
                "index": 0,
            }
            usage: Dict[str, Any] = {"promptTokenCount": prompt_tokens}
            if i == len(cut) - 1:
                candidate["finishReason"] = "STOP"
                usage["candidatesTokenCount"] = len(text.split())
            chunks.append({"candidates": [candidate], "usageMetadata": usage})
        x.json(200, chunks)


@pytest.fixture(scope="module")
def fake() -> Iterator[LegacyFakeProvider]:
    with LegacyFakeProvider() as srv:
        genai.configure(api_key="x", transport="rest", client_options={"api_endpoint": srv.url})
        try:
            yield srv
        finally:
            legacy_client = sys.modules["google.generativeai.client"]
            legacy_client._client_manager = legacy_client._ClientManager()  # unconfigure


def test_legacy_watch_sync_and_stream(
    fake: LegacyFakeProvider, capture_server: Any, client: Any
) -> None:
    model = watch(genai.GenerativeModel("gemini-1.5-flash"), capture_content=True)
    assert model.model_name == "models/gemini-1.5-flash"

    @client.trace("legacy gemini")
    def run() -> str:
        r = model.generate_content("hello there", generation_config={"temperature": 0.2})
        stream = model.generate_content("stream three words", stream=True)
        text = "".join(chunk.text for chunk in stream)
        return str(r.text) + " | " + text

    assert run() == (
        "Echo from gemini-1.5-flash: hello there | Echo from gemini-1.5-flash: stream three words"
    )
    paths = [r.path.split("?")[0] for r in fake.requests[-2:]]
    assert paths == [
        "/v1beta/models/gemini-1.5-flash:generateContent",
        "/v1beta/models/gemini-1.5-flash:streamGenerateContent",
    ]
    (body,) = received(capture_server)
    steps = llm_steps(body)
    # The legacy model's name is "models/<id>"; recorded as is (as infinium-o2 does).
    assert [s["description"] for s in steps] == ["google/models/gemini-1.5-flash"] * 2
    first, second = steps
    assert first["llm_call"]["provider"] == "google"
    assert first["llm_call"]["model"] == "models/gemini-1.5-flash"
    assert (first["llm_call"]["prompt_tokens"], first["llm_call"]["completion_tokens"]) == (2, 5)
    assert (second["llm_call"]["prompt_tokens"], second["llm_call"]["completion_tokens"]) == (3, 6)
    assert first["llm_call"]["temperature"] == 0.2
    assert first["input_preview"] == "hello there"
    assert first["output_preview"] == "Echo from gemini-1.5-flash: hello there"
    assert second["output_preview"] == "Echo from gemini-1.5-flash: stream three words"
    for s in steps:
        assert isinstance(s["llm_call"]["latency_ms"], int)
    usage = body["llm_usage"]
    assert (usage["provider"], usage["model"]) == ("google", "models/gemini-1.5-flash")
    totals = (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"])
    assert totals == (5, 11, 16)
    assert usage["api_calls_count"] == 2


def test_legacy_instrumentor_patches_and_restores(
    fake: LegacyFakeProvider, capture_server: Any, client: Any
) -> None:
    cls = genai.GenerativeModel
    originals = (cls.__dict__["generate_content"], cls.__dict__["generate_content_async"])
    inst = GoogleInstrumentor()
    inst.instrument()
    try:
        assert cls.__dict__["generate_content"] is not originals[0]
        assert cls.__dict__["generate_content_async"] is not originals[1]
        assert GoogleInstrumentor._original_sync is originals[0]
        assert GoogleInstrumentor._original_async is originals[1]
        flash = genai.GenerativeModel("gemini-1.5-flash")
        pro = watch(genai.GenerativeModel("gemini-1.5-pro"))  # no double recording

        @client.trace("instrumented legacy")
        def run() -> None:
            flash.generate_content("hi")
            for _ in pro.generate_content("stream me", stream=True):
                pass

        run()
    finally:
        inst.uninstrument()
    assert (cls.__dict__["generate_content"], cls.__dict__["generate_content_async"]) == originals
    assert GoogleInstrumentor._original_sync is None
    steps = llm_steps(received(capture_server)[0])
    assert [s["description"] for s in steps] == [
        "google/models/gemini-1.5-flash",
        "google/models/gemini-1.5-pro",
    ]
    tokens = [(s["llm_call"]["prompt_tokens"], s["llm_call"]["completion_tokens"]) for s in steps]
    assert tokens == [(1, 4), (2, 5)]
    assert "output_preview" not in steps[0]  # capture_content off

    # Restored: a call inside a trace is no longer recorded.
    @client.trace("after uninstrument")
    def after() -> None:
        genai.GenerativeModel("gemini-1.5-flash").generate_content("hi")

    after()
    assert llm_steps(received(capture_server)[1]) == []
