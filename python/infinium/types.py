"""Public data types of the Infinium SDK.

All are plain dataclasses with the field order and defaults of ``infinium-o2``
1.2.0, so positional construction and ``dataclasses.asdict`` behave the same.
The Rust core serialises them straight from these objects (see ``dumps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

from . import _core

__all__ = [
    "ApiResponse",
    "BatchResult",
    "ConfigDict",
    "Content",
    "Customer",
    "Development",
    "EnvironmentContext",
    "ErrorDetail",
    "ExecutionStep",
    "Executive",
    "ExpectedOutcome",
    "General",
    "LlmCall",
    "LlmUsage",
    "Marketing",
    "Project",
    "PromptContent",
    "Research",
    "Sales",
    "Support",
    "TaskData",
    "TaskSections",
    "TimeTracking",
    "ToolCall",
]


@dataclass
class ErrorDetail:
    """An error met during the run: its type, message, whether the agent recovered,
    retries, stack trace and code."""

    error_type: str
    message: str
    recoverable: bool = False
    retry_count: int = 0
    stack_trace: Optional[str] = None
    error_code: Optional[str] = None


@dataclass
class ToolCall:
    """One call of a tool (an API, a search, a function) made inside a step."""

    tool_name: str
    duration_ms: Optional[int] = None
    input_summary: Optional[str] = None
    output_summary: Optional[str] = None
    error: Optional[ErrorDetail] = None
    http_status: Optional[int] = None


@dataclass
class LlmCall:
    """One call of a language model: which model and provider, tokens, latency,
    temperature and purpose."""

    model: str
    provider: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    latency_ms: Optional[int] = None
    temperature: Optional[float] = None
    purpose: Optional[str] = None


@dataclass
class ExecutionStep:
    """One numbered step of the run, with its timing, previews, error, tool or LLM
    call and metadata."""

    step_number: int
    action: str
    description: str
    duration_ms: Optional[int] = None
    input_preview: Optional[str] = None
    output_preview: Optional[str] = None
    error: Optional[ErrorDetail] = None
    tool_call: Optional[ToolCall] = None
    llm_call: Optional[LlmCall] = None
    metadata: Optional[Dict[str, Any]] = None


@dataclass
class ExpectedOutcome:
    """What the run was meant to achieve, against which it is graded."""

    task_objective: str
    required_deliverables: Optional[List[str]] = None
    constraints: Optional[List[str]] = None
    acceptance_criteria: Optional[List[str]] = None


@dataclass
class EnvironmentContext:
    """Where the agent ran: framework, versions, runtime, region and free-form tags."""

    framework: Optional[str] = None
    framework_version: Optional[str] = None
    python_version: Optional[str] = None
    sdk_version: Optional[str] = None
    runtime: Optional[str] = None
    region: Optional[str] = None
    custom_tags: Optional[Dict[str, str]] = None


# --- domain sections --------------------------------------------------------


@dataclass
class TimeTracking:
    """Section: when the work started and ended."""

    start_time: Optional[str] = None
    end_time: Optional[str] = None


@dataclass
class Customer:
    """Section: the customer or client the work was for."""

    customer_name: Optional[str] = None
    customer_email: Optional[str] = None
    customer_phone: Optional[str] = None
    customer_address: Optional[str] = None
    client_company: Optional[str] = None
    client_industry: Optional[str] = None


@dataclass
class Support:
    """Section: a support case: the issue, its priority and how it was resolved."""

    call_id: Optional[str] = None
    issue_description: Optional[str] = None
    issue_type: Optional[str] = None
    resolution: Optional[str] = None
    priority: Optional[str] = None
    follow_up_required: Optional[bool] = None
    agent_notes: Optional[str] = None


@dataclass
class Sales:
    """Section: a sales activity: lead, stage, deal value and conversion."""

    lead_source: Optional[str] = None
    sales_stage: Optional[str] = None
    deal_value: Optional[float] = None
    conversion_rate: Optional[float] = None
    sales_notes: Optional[str] = None


@dataclass
class Marketing:
    """Section: a marketing campaign, its audience, channel and metrics."""

    campaign_name: Optional[str] = None
    campaign_type: Optional[str] = None
    target_audience: Optional[str] = None
    marketing_channel: Optional[str] = None
    engagement_metrics: Optional[str] = None
    conversion_metrics: Optional[str] = None


@dataclass
class Content:
    """Section: a piece of content produced: type, format, length, topic and
    platform."""

    content_type: Optional[str] = None
    content_format: Optional[str] = None
    content_length: Optional[int] = None
    content_topic: Optional[str] = None
    target_platform: Optional[str] = None


@dataclass
class Research:
    """Section: a research task: topic, method, sources, findings and confidence."""

    research_topic: Optional[str] = None
    research_method: Optional[str] = None
    data_sources: Optional[Union[str, List[str]]] = None
    research_findings: Optional[str] = None
    analysis_type: Optional[str] = None
    sources_consulted: Optional[int] = None
    key_findings: Optional[List[str]] = None
    confidence_level: Optional[str] = None
    data_quality: Optional[str] = None


@dataclass
class Project:
    """Section: project work: phase, deliverables, stakeholders, status and risks."""

    project_name: Optional[str] = None
    project_phase: Optional[str] = None
    deliverables: Optional[Union[str, List[str]]] = None
    stakeholders: Optional[Union[str, List[str]]] = None
    project_status: Optional[str] = None
    milestone_achieved: Optional[str] = None
    task_priority: Optional[str] = None
    resource_utilization: Optional[float] = None
    risk_assessment: Optional[str] = None
    blockers: Optional[List[str]] = None


@dataclass
class Development:
    """Section: software work: language, framework, bugs, tests, coverage and
    deployment."""

    programming_language: Optional[str] = None
    framework_used: Optional[str] = None
    bugs_found: Optional[int] = None
    bugs_fixed: Optional[int] = None
    test_coverage: Optional[float] = None
    performance_metrics: Optional[Union[str, Dict[str, Any]]] = None
    deployment_status: Optional[str] = None
    technical_debt: Optional[str] = None
    files_modified: Optional[List[str]] = None
    tests_run: Optional[int] = None
    tests_passed: Optional[int] = None


@dataclass
class Executive:
    """Section: executive work: meetings, agenda, actions and decisions."""

    meeting_type: Optional[str] = None
    attendees_count: Optional[int] = None
    agenda_items: Optional[Union[str, List[str]]] = None
    action_items: Optional[Union[str, List[str]]] = None
    calendar_conflicts: Optional[int] = None
    decisions_made: Optional[List[str]] = None


@dataclass
class General:
    """Section: anything else: tools used, notes, errors met, retries, warnings,
    APIs, data sources, tags."""

    tools_used: Optional[Union[str, List[str]]] = None
    agent_notes: Optional[str] = None
    errors_encountered: Optional[List[ErrorDetail]] = None
    retries: Optional[int] = None
    warnings: Optional[List[str]] = None
    external_apis_called: Optional[List[str]] = None
    data_sources_accessed: Optional[List[str]] = None
    tags: Optional[List[str]] = None


# --- non-section types ------------------------------------------------------


@dataclass
class PromptContent:
    """A Prompt Studio prompt as fetched by ``get_prompt``, with its placeholders
    filled in ``rendered_content``."""

    prompt_id: str
    name: str
    version: int
    content: str
    created_at: str
    rendered_content: Optional[str] = None


@dataclass
class LlmUsage:
    """The run's language-model usage in total: tokens, cost, number of calls,
    latency, and the calls themselves."""

    model: Optional[str] = None
    provider: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    estimated_cost_usd: Optional[float] = None
    api_calls_count: Optional[int] = None
    total_latency_ms: Optional[int] = None
    calls: Optional[List[LlmCall]] = None


@dataclass
class TaskData:
    """One trace: what an agent run did, as sent to the Infinium API
    (``send_task_data``)."""

    name: str
    description: str
    current_datetime: str
    duration: float
    time_tracking: Optional[TimeTracking] = None
    customer: Optional[Customer] = None
    support: Optional[Support] = None
    sales: Optional[Sales] = None
    marketing: Optional[Marketing] = None
    content: Optional[Content] = None
    research: Optional[Research] = None
    project: Optional[Project] = None
    development: Optional[Development] = None
    executive: Optional[Executive] = None
    general: Optional[General] = None
    llm_usage: Optional[LlmUsage] = None
    input_summary: Optional[str] = None
    output_summary: Optional[str] = None
    steps: Optional[List[ExecutionStep]] = None
    expected_outcome: Optional[ExpectedOutcome] = None
    environment: Optional[EnvironmentContext] = None
    errors: Optional[List[ErrorDetail]] = None
    # Set on an instance by the decorators when prompts were fetched (sent as
    # ``prompt_studio``). Not a field, and not annotated, so neither
    # ``fields()`` nor ``get_type_hints()`` lists it (as the anchor's); the
    # class-level None lets the serialiser read it without an AttributeError
    # for every other trace.
    _prompt_studio = None


@dataclass
class ApiResponse:
    """The answer to one request: success, HTTP status, the server's message and its
    JSON body."""

    success: bool
    status_code: Optional[int] = None
    message: str = ""
    data: Optional[Dict[str, Any]] = None


@dataclass
class BatchResult:
    """The outcome of ``send_tasks_batch``: counts, one ``ApiResponse`` per task in
    input order, and the error messages."""

    successful: int
    failed: int
    # Spelled as the anchor spells them: ``dataclasses.fields()`` reports these
    # strings (the module has postponed annotations), and so does get_type_hints.
    results: list[ApiResponse]
    errors: list[str]

    @property
    def total_tasks(self) -> int:
        """Number of tasks in the batch (JavaScript-edition ``totalTasks``)."""
        return self.successful + self.failed


TaskSections = Dict[
    str,
    Union[
        TimeTracking,
        Customer,
        Support,
        Sales,
        Marketing,
        Content,
        Research,
        Project,
        Development,
        Executive,
        General,
    ],
]
"""Sections by attribute name (``{"customer": Customer(...)}``)."""
ConfigDict = Dict[str, Any]
"""A plain configuration mapping."""

#: Section attribute name -> dataclass, in wire order. The names are the
#: schema's (``_core.SECTIONS``); each section's class is its name in CamelCase
#: (``time_tracking`` -> ``TimeTracking``).
SECTION_TYPES: Dict[str, type] = {
    name: globals()["".join(part.capitalize() for part in name.split("_"))]
    for name in _core.SECTIONS
}
