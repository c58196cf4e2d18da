"""Public data types of the Infinium SDK.

All are plain dataclasses with the field order and defaults of ``infinium-o2``
1.2.0, so positional construction and ``dataclasses.asdict`` behave the same.
The Rust core serialises them straight from these objects (see ``dumps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Union

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
    error_type: str
    message: str
    recoverable: bool = False
    retry_count: int = 0
    stack_trace: Optional[str] = None
    error_code: Optional[str] = None


@dataclass
class ToolCall:
    tool_name: str
    duration_ms: Optional[int] = None
    input_summary: Optional[str] = None
    output_summary: Optional[str] = None
    error: Optional[ErrorDetail] = None
    http_status: Optional[int] = None


@dataclass
class LlmCall:
    model: str
    provider: Optional[str] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    latency_ms: Optional[int] = None
    temperature: Optional[float] = None
    purpose: Optional[str] = None


@dataclass
class ExecutionStep:
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
    task_objective: str
    required_deliverables: Optional[List[str]] = None
    constraints: Optional[List[str]] = None
    acceptance_criteria: Optional[List[str]] = None


@dataclass
class EnvironmentContext:
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
    start_time: Optional[str] = None
    end_time: Optional[str] = None


@dataclass
class Customer:
    customer_name: Optional[str] = None
    customer_email: Optional[str] = None
    customer_phone: Optional[str] = None
    customer_address: Optional[str] = None
    client_company: Optional[str] = None
    client_industry: Optional[str] = None


@dataclass
class Support:
    call_id: Optional[str] = None
    issue_description: Optional[str] = None
    issue_type: Optional[str] = None
    resolution: Optional[str] = None
    priority: Optional[str] = None
    follow_up_required: Optional[bool] = None
    agent_notes: Optional[str] = None


@dataclass
class Sales:
    lead_source: Optional[str] = None
    sales_stage: Optional[str] = None
    deal_value: Optional[float] = None
    conversion_rate: Optional[float] = None
    sales_notes: Optional[str] = None


@dataclass
class Marketing:
    campaign_name: Optional[str] = None
    campaign_type: Optional[str] = None
    target_audience: Optional[str] = None
    marketing_channel: Optional[str] = None
    engagement_metrics: Optional[str] = None
    conversion_metrics: Optional[str] = None


@dataclass
class Content:
    content_type: Optional[str] = None
    content_format: Optional[str] = None
    content_length: Optional[int] = None
    content_topic: Optional[str] = None
    target_platform: Optional[str] = None


@dataclass
class Research:
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
    meeting_type: Optional[str] = None
    attendees_count: Optional[int] = None
    agenda_items: Optional[Union[str, List[str]]] = None
    action_items: Optional[Union[str, List[str]]] = None
    calendar_conflicts: Optional[int] = None
    decisions_made: Optional[List[str]] = None


@dataclass
class General:
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
    prompt_id: str
    name: str
    version: int
    content: str
    created_at: str
    rendered_content: Optional[str] = None


@dataclass
class LlmUsage:
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
    #: Set on an instance by the decorators when prompts were fetched (sent as
    #: ``prompt_studio``). Not a field; the class-level None lets the
    #: serialiser read it without an AttributeError for every other trace.
    _prompt_studio: ClassVar[Optional[Dict[str, Any]]] = None


@dataclass
class ApiResponse:
    success: bool
    status_code: Optional[int] = None
    message: str = ""
    data: Optional[Dict[str, Any]] = None


@dataclass
class BatchResult:
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
ConfigDict = Dict[str, Any]

#: Section attribute name -> dataclass, in wire order.
SECTION_TYPES: Dict[str, type] = {
    "time_tracking": TimeTracking,
    "customer": Customer,
    "support": Support,
    "sales": Sales,
    "marketing": Marketing,
    "content": Content,
    "research": Research,
    "project": Project,
    "development": Development,
    "executive": Executive,
    "general": General,
}
