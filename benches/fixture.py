"""The benchmark trace: a realistic ~13 KB, 12-step agent run.

Shared by the harness worker (both SDKs: only names from ``infinium.types``
that the anchor ``infinium-o2==1.2.0`` also has) and by the criterion bench
``benches/payload.rs`` (which loads this file with ``include_str!`` and passes
the ``types`` module in). No imports beyond the standard library here.
"""

AGENT_ID = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
AGENT_SECRET = "bench-secret-0123456789"

_LOREM = (
    "The agent reviewed the customer's ticket history, cross-checked the order "
    "database and drafted a reply that explains the refund policy in plain terms; "
    "it flagged one inconsistency (order #48213 shipped twice) for a human — "
    "résumé attached, naïve retry avoided, “quoted” text kept as-is. "
)


def _text(n, seed):
    """Deterministic text of exactly ``n`` characters (some non-ASCII, a few escapes)."""
    base = (f"[{seed}] " + _LOREM) * (n // len(_LOREM) + 2)
    return base[:n]


def build_task(t, index=0):
    """A 12-step TaskData built with the dataclasses of module ``t`` (``infinium.types``)."""
    steps = []
    calls = []
    for i in range(1, 13):
        kind = i % 3
        tool_call = None
        llm_call = None
        error = None
        if kind == 0:
            tool_call = t.ToolCall(
                tool_name="crm.lookup_order",
                duration_ms=40 + i,
                input_summary=_text(120, f"tool-in-{i}"),
                output_summary=_text(200, f"tool-out-{i}"),
                http_status=200,
            )
        elif kind == 1:
            llm_call = t.LlmCall(
                model="gpt-4o-mini",
                provider="openai",
                prompt_tokens=812 + i,
                completion_tokens=164 + i,
                latency_ms=900 + 13 * i,
                temperature=0.2,
                purpose="draft reply",
            )
            calls.append(llm_call)
        else:
            if i == 5:
                error = t.ErrorDetail(
                    error_type="TimeoutError",
                    message="upstream search timed out after 5.0 s\nretrying",
                    recoverable=True,
                    retry_count=1,
                )
        steps.append(
            t.ExecutionStep(
                step_number=i,
                action=("llm_call", "tool_call", "reasoning")[kind],
                description=f"Step {i}: " + _text(80, f"desc-{i}"),
                duration_ms=120 + 7 * i,
                input_preview=_text(110, f"in-{i}"),
                output_preview=_text(190, f"out-{i}"),
                error=error,
                tool_call=tool_call,
                llm_call=llm_call,
                metadata={
                    "attempt": 1,
                    "cache_hit": i % 2 == 0,
                    "score": 0.75 + i / 100,
                    "labels": ["support", "refund"],
                    "note": None,
                },
            )
        )
    return t.TaskData(
        name=f"Customer support triage #{index}",
        description="Triaged an inbound refund request end to end: " + _text(300, "task"),
        current_datetime="2026-05-09T07:35:25.123456Z",
        duration=12.345,
        input_summary=_text(400, "input"),
        output_summary=_text(700, "output"),
        steps=steps,
        expected_outcome=t.ExpectedOutcome(
            task_objective="Resolve the refund request within policy",
            required_deliverables=["reply email", "refund decision"],
            constraints=["no PII in logs"],
            acceptance_criteria=["customer informed", "ticket closed"],
        ),
        llm_usage=t.LlmUsage(
            model="gpt-4o-mini",
            provider="openai",
            prompt_tokens=sum(c.prompt_tokens for c in calls),
            completion_tokens=sum(c.completion_tokens for c in calls),
            total_tokens=sum(c.prompt_tokens + c.completion_tokens for c in calls),
            estimated_cost_usd=0.00123,
            api_calls_count=len(calls),
            total_latency_ms=sum(c.latency_ms for c in calls),
            calls=calls,
        ),
        customer=t.Customer(
            customer_name="Ada Lovelace",
            customer_email="ada@example.com",
            client_company="Analytical Engines Ltd",
            client_industry="retail",
        ),
        support=t.Support(
            call_id="T-48213",
            issue_description=_text(200, "issue"),
            issue_type="refund",
            resolution="refund approved",
            priority="high",
            follow_up_required=False,
        ),
        environment=t.EnvironmentContext(
            framework="custom",
            framework_version="1.0",
            python_version="3.11.7",
            sdk_version="1.2.0",
            runtime="cpython",
            region="eu-west-1",
            custom_tags={"team": "support", "tier": "gold"},
        ),
        errors=[
            t.ErrorDetail(
                error_type="TimeoutError",
                message="search timed out once",
                recoverable=True,
                retry_count=1,
            )
        ],
    )
