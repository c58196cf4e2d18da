//! Exposes the `Py_3_x`, `Py_LIMITED_API`, `PyPy`, ... cfgs of the interpreter
//! the extension is built for, so version-specific fast paths can be chosen
//! at compile time (src/payload/value.rs).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
