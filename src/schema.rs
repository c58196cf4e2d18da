//! The wire schema of a trace: the `TaskData` field list, the section names
//! and the limits. Every other place (the serialiser, the local server,
//! Python's `infinium.utils` / `infinium.types` / the clients) reads them
//! from here; Python sees them as `_core.TASK_FIELDS`, `_core.SECTIONS`,
//! `_core.TOP_LEVEL_FIELDS` and `_core.MAX_*`.

use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// Longest `name`, in code points.
pub const MAX_NAME_LENGTH: usize = 500;
/// Longest `description`, in code points.
pub const MAX_DESCRIPTION_LENGTH: usize = 10_000;
/// Longest other checked string (a prompt key), in code points.
pub const MAX_STRING_LENGTH: usize = 2_000;
/// Largest trace body, in bytes of compact UTF-8 JSON.
pub const MAX_PAYLOAD_SIZE: usize = 1_048_576;
/// Longest `duration`, in seconds (24 hours).
pub const MAX_DURATION: u32 = 86_400;
/// Deepest nesting of containers the serialiser walks into.
pub const MAX_DEPTH: usize = 64;

/// The always-present head of a trace body, in `TaskData`'s order.
pub const HEAD_FIELDS: [&str; 4] = ["name", "description", "current_datetime", "duration"];

/// Sections, in `TaskData`'s order, which is their wire order inside `"sections"`.
pub const SECTIONS: [&str; 11] = [
    "time_tracking",
    "customer",
    "support",
    "sales",
    "marketing",
    "content",
    "research",
    "project",
    "development",
    "executive",
    "general",
];

/// The optional `TaskData` fields that are not sections (what `send_task`
/// accepts as keyword arguments besides the sections), in `TaskData`'s order.
pub const TOP_LEVEL_FIELDS: [&str; 7] = [
    "llm_usage",
    "input_summary",
    "output_summary",
    "steps",
    "expected_outcome",
    "environment",
    "errors",
];

/// Number of `TaskData` fields.
pub const N_TASK_FIELDS: usize = HEAD_FIELDS.len() + SECTIONS.len() + TOP_LEVEL_FIELDS.len();

/// Every `TaskData` field, in declaration order.
pub const TASK_FIELDS: [&str; N_TASK_FIELDS] = {
    let mut out = [""; N_TASK_FIELDS];
    let mut i = 0;
    while i < HEAD_FIELDS.len() {
        out[i] = HEAD_FIELDS[i];
        i += 1;
    }
    let mut j = 0;
    while j < SECTIONS.len() {
        out[i + j] = SECTIONS[j];
        j += 1;
    }
    let mut k = 0;
    while k < TOP_LEVEL_FIELDS.len() {
        out[i + j + k] = TOP_LEVEL_FIELDS[k];
        k += 1;
    }
    out
};

/// The key holding the sections in the body.
pub const SECTIONS_KEY: &str = "sections";
/// The Prompt Studio record: its key in the body and in a dict trace.
pub const PROMPT_STUDIO_KEY: &str = "prompt_studio";
/// The Prompt Studio record on a `TaskData` (set by the decorators; not a field).
pub const PROMPT_STUDIO_ATTR: &str = "_prompt_studio";

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The position of `name` in [`TASK_FIELDS`]; a compile error when absent.
pub const fn field_index(name: &str) -> usize {
    let mut i = 0;
    while i < TASK_FIELDS.len() {
        if same(TASK_FIELDS[i], name) {
            return i;
        }
        i += 1;
    }
    panic!("not a TaskData field")
}

/// Export the schema to the `_core` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TASK_FIELDS", PyTuple::new(py, TASK_FIELDS)?)?;
    m.add("SECTIONS", PyTuple::new(py, SECTIONS)?)?;
    m.add("TOP_LEVEL_FIELDS", PyTuple::new(py, TOP_LEVEL_FIELDS)?)?;
    m.add("MAX_NAME_LENGTH", MAX_NAME_LENGTH)?;
    m.add("MAX_DESCRIPTION_LENGTH", MAX_DESCRIPTION_LENGTH)?;
    m.add("MAX_STRING_LENGTH", MAX_STRING_LENGTH)?;
    m.add("MAX_PAYLOAD_SIZE", MAX_PAYLOAD_SIZE)?;
    m.add("MAX_DURATION", MAX_DURATION)?;
    m.add("MAX_DEPTH", MAX_DEPTH)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_fields_are_head_sections_then_the_rest() {
        assert_eq!(TASK_FIELDS.len(), 22);
        assert_eq!(TASK_FIELDS[0], "name");
        assert_eq!(TASK_FIELDS[field_index("time_tracking")], SECTIONS[0]);
        assert_eq!(field_index("general"), 14);
        assert_eq!(field_index("errors"), 21);
        let mut sorted = TASK_FIELDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), TASK_FIELDS.len(), "no field twice");
    }
}
