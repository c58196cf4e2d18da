"""``estimate_cost=True``: each call's cost from the genai-prices table (the ``cost``
extra) in its step metadata and the sum on ``llm_usage.estimated_cost_usd``; unknown
models get none (and then the trace no total); off by default; without the package
a warning and no cost; the package imported only when asked for."""

from __future__ import annotations

import logging
import subprocess
import sys
from decimal import Decimal
from typing import Any, Iterator

import pytest

from infinium.integrations import OpenAIInstrumentor, _pricing, watch

from .fake_provider import FakeProvider
from .watch_helpers import USER, anth, gem, llm_steps, oai, only_trace, received

pytest.importorskip("genai_prices")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as srv:
        yield srv


def usd(text: str) -> float:
    return float(Decimal(text))


def test_costs_per_call_and_summed(fake: FakeProvider, capture_server: Any, client: Any) -> None:
    o = watch(oai(fake), estimate_cost=True)
    a = watch(anth(fake), estimate_cost=True)
    g = watch(gem(fake), estimate_cost=True)

    @client.trace("priced")
    def run() -> None:
        # gpt-4o: $2.5 / $1.25 cached / $10 per M tokens: 2 + 2 cached in, 5 out
        o.chat.completions.create(
            model="gpt-4o", messages=USER, extra_headers={"x-fake-cached-tokens": "2"}
        )
        # claude-sonnet-4-5: $3 in, $0.3 cache read, $3.75 cache write, $15 out per M;
        # 4 in + 30 read + 12 written (outside input_tokens), 5 out
        a.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            system="Be brief.",
            messages=USER[1:],
            extra_headers={"x-fake-cached-tokens": "30", "x-fake-cache-write-tokens": "12"},
        )
        # gemini-2.5-flash: $0.3 in, $2.5 out per M; 2 in, 5 out + 11 thinking
        g.models.generate_content(
            model="gemini-2.5-flash",
            contents="a b",
            config={"http_options": {"headers": {"x-fake-reasoning-tokens": "11"}}},
        )
        # text-embedding-3-small: $0.02 per M; 3 in
        o.embeddings.create(model="text-embedding-3-small", input="one two three")

    run()
    body = only_trace(capture_server)
    costs = [s["metadata"]["estimated_cost_usd"] for s in llm_steps(body)]
    expected = ["0.0000575", "0.000141", "0.0000406", "0.00000006"]
    assert costs == [usd(c) for c in expected]
    assert body["llm_usage"]["estimated_cost_usd"] == usd("0.00023916")


def test_unknown_model_gets_no_cost_and_no_total(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    o = watch(oai(fake), estimate_cost=True)

    @client.trace("partly priced")
    def run() -> None:
        o.chat.completions.create(model="gpt-4o", messages=USER)
        o.chat.completions.create(model="house-model-7", messages=USER)
        try:
            o.chat.completions.create(model="error-500", messages=USER)  # no usage
        except Exception:
            pass

    run()
    body = only_trace(capture_server)
    steps = llm_steps(body)
    assert steps[0]["metadata"] == {"estimated_cost_usd": usd("0.00006")}
    assert "metadata" not in steps[1] and "metadata" not in steps[2]
    assert "estimated_cost_usd" not in body["llm_usage"]  # a partial sum would be a guess


def test_off_by_default_and_instrumentor_option(
    fake: FakeProvider, capture_server: Any, client: Any
) -> None:
    plain = watch(oai(fake))

    @client.trace("unpriced")
    def run() -> None:
        plain.chat.completions.create(model="gpt-4o", messages=USER)

    run()
    body = only_trace(capture_server)
    assert "metadata" not in llm_steps(body)[0]
    assert "estimated_cost_usd" not in body["llm_usage"]

    instrumentor = OpenAIInstrumentor(estimate_cost=True)
    instrumentor.instrument()
    try:
        priced = oai(fake)

        @client.trace("instrumented")
        def run2() -> None:
            priced.responses.create(model="gpt-4o", input="hello there")

        run2()
    finally:
        instrumentor.uninstrument()
    last = received(capture_server)[-1]
    # 2 in, 5 out ("Echo from gpt-4o: hello there")
    assert last["llm_usage"]["estimated_cost_usd"] == usd("0.000055")


def test_without_the_package_a_warning_and_no_cost(
    fake: FakeProvider,
    capture_server: Any,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setitem(sys.modules, "genai_prices", None)  # import fails
    monkeypatch.setattr(_pricing, "_tried", False)
    monkeypatch.setattr(_pricing, "_module", None)
    with caplog.at_level(logging.WARNING, logger="infinium.integrations"):
        o = watch(oai(fake), estimate_cost=True)
        watch(anth(fake), estimate_cost=True)  # warned once only

    @client.trace("no price table")
    def run() -> None:
        o.chat.completions.create(model="gpt-4o", messages=USER)

    run()
    body = only_trace(capture_server)
    assert "metadata" not in llm_steps(body)[0]
    assert "estimated_cost_usd" not in body["llm_usage"]
    warnings = [r.getMessage() for r in caplog.records if "genai-prices" in r.getMessage()]
    assert len(warnings) == 1 and "pip install 'infinium-rs[cost]'" in warnings[0]


def test_price_table_imported_only_when_asked_for() -> None:
    code = (
        "import sys, openai, infinium\n"
        "from infinium.integrations import watch\n"
        "watch(openai.OpenAI(api_key='x'))\n"
        "print('genai_prices' in sys.modules)\n"
        "watch(openai.OpenAI(api_key='x'), estimate_cost=True)\n"
        "print('genai_prices' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_signatures_are_the_anchors_plus_keyword_only_estimate_cost() -> None:
    import inspect

    from infinium.integrations import (
        AnthropicInstrumentor,
        GoogleInstrumentor,
        patch_anthropic_client,
        patch_async_anthropic_client,
        patch_async_openai_client,
        patch_google_genai_client,
        patch_google_model,
        patch_openai_client,
    )

    def shape(fn: Any) -> Any:
        return [(p.name, p.kind.name, p.default) for p in inspect.signature(fn).parameters.values()]

    extra = ("estimate_cost", "KEYWORD_ONLY", False)
    first = ("client", "POSITIONAL_OR_KEYWORD", inspect.Parameter.empty)
    capture = ("capture_content", "POSITIONAL_OR_KEYWORD", False)
    assert shape(watch) == [first, capture, extra]
    for cls in (OpenAIInstrumentor, AnthropicInstrumentor, GoogleInstrumentor):
        assert shape(cls) == [capture, extra]
    for fn in (
        patch_openai_client,
        patch_async_openai_client,
        patch_anthropic_client,
        patch_async_anthropic_client,
        patch_google_genai_client,
    ):
        assert shape(fn) == [first, capture, extra]
    assert shape(patch_google_model)[1:] == [capture, extra]
