//! The dataclass rules of the writer: `None` fields are omitted, a nested
//! dataclass that ends up empty is omitted, inside a list field `None` items
//! and empty dataclass items are dropped and a list that ends up empty is
//! omitted.

use std::rc::Rc;

use pyo3::ffi;
use pyo3::prelude::*;

use super::attrs::{getattr_or_none, walk_instance_dicts};
use super::error::{Seg, SerResult};
use super::ffi::{
    dict_lookup, dict_next, is_plain_builtin, list_type, none, own, plain_dict, seq_item, tuple_type, type_of,
};
use super::types::{dataclass_info, Field, TypeInfo};
use super::writer::Writer;

impl<'py> Writer<'py> {
    /// Write `obj` (a dataclass, `info` its type's) as an object under the
    /// omission rules. Returns false, having written nothing, when no field
    /// survives.
    pub(crate) fn write_dataclass(&mut self, obj: &Bound<'py, PyAny>, info: &TypeInfo) -> SerResult<bool> {
        let Some(fields) = info.fields.as_deref() else {
            return Ok(false);
        };
        self.enter(obj)?;
        let start = self.buf.len();
        self.buf.push(b'{');
        let mut count = 0;
        let walk = walk_instance_dicts(self.py);
        if info.plain && walk {
            let d = plain_dict(obj)?;
            // A dataclass `__init__` fills the instance dict in field order
            // with the interned names: walk the dict alongside the fields,
            // comparing key pointers; each value is written as it is read.
            let mut pos = 0;
            let mut j = 0;
            while j < fields.len() {
                let Some((k, v)) = dict_next(&d, &mut pos) else {
                    break;
                };
                if k != fields[j].name.as_ptr() {
                    break;
                }
                // `v` is borrowed from `d` (held) and used right away.
                if self.dataclass_field(count, &fields[j], v)? {
                    count += 1;
                }
                j += 1;
            }
            // Anything unusual (reordered, deleted): a lookup per field.
            for (f, &class_attr) in fields[j..].iter().zip(&info.class_attr[j..]) {
                if let Some(v) = dict_lookup(&d, &f.name)? {
                    if self.dataclass_field(count, f, v)? {
                        count += 1;
                    }
                } else if class_attr {
                    if let Some(v) = getattr_or_none(obj, &f.name, info.generic_getattr)? {
                        if self.dataclass_field(count, f, v.as_ptr())? {
                            count += 1;
                        }
                    }
                }
            }
        } else {
            // getattr, also where an instance dict exists but the class
            // customises attribute access (reading the dict would bypass it).
            for f in fields {
                if let Some(v) = getattr_or_none(obj, &f.name, info.generic_getattr)? {
                    if self.dataclass_field(count, f, v.as_ptr())? {
                        count += 1;
                    }
                }
            }
        }
        if count == 0 {
            self.buf.truncate(start);
            self.leave();
            return Ok(false);
        }
        self.buf.push(b'}');
        self.leave();
        Ok(true)
    }

    /// One field value (live, possibly borrowed: used before any Python code
    /// runs, or owned first): nothing for None, else as `write_field`.
    #[inline]
    pub(crate) fn dataclass_field(
        &mut self,
        count: usize,
        f: &Field,
        v: *mut ffi::PyObject,
    ) -> SerResult<bool> {
        if v == none() {
            return Ok(false);
        }
        let start = self.buf.len();
        self.raw_key(count, &f.json_key);
        if let Some(r) = self.write_leaf(v) {
            r.map_err(|e| e.at_key(&f.text))?;
            return Ok(true);
        }
        let v = own(self.py, v);
        let kept = self.field_body(&v).map_err(|e| e.at_key(&f.text))?;
        if !kept {
            self.buf.truncate(start);
        }
        Ok(kept)
    }

    /// The value of a dataclass field (not None) under the dataclass rules.
    pub(crate) fn field_body(&mut self, value: &Bound<'py, PyAny>) -> SerResult<bool> {
        let t = type_of(value.as_ptr());
        if t == list_type() || t == tuple_type() {
            self.write_filtered_list(value)
        } else if let Some(info) = self.nested_dataclass(value)? {
            self.write_dataclass(value, &info)
        } else {
            self.write_value(value)?;
            Ok(true)
        }
    }

    pub(crate) fn nested_dataclass(&self, value: &Bound<'py, PyAny>) -> SerResult<Option<Rc<TypeInfo>>> {
        // Exact builtins are never dataclasses: skip the type lookup.
        if is_plain_builtin(value.as_ptr()) {
            return Ok(None);
        }
        dataclass_info(value)
    }

    /// A list field: `None` items and empty dataclass items dropped; other
    /// items as they are. Returns false (nothing written) when empty.
    pub(crate) fn write_filtered_list(&mut self, list: &Bound<'py, PyAny>) -> SerResult<bool> {
        self.enter(list)?;
        let start = self.buf.len();
        self.buf.push(b'[');
        let mut count = 0;
        let mut i = 0;
        while let Some(item) = seq_item(list, i) {
            let index = i;
            i += 1;
            self.tick().map_err(|e| e.at(Seg::Index(index)))?;
            if item == none() {
                continue;
            }
            let before = self.buf.len();
            if count > 0 {
                self.buf.push(b',');
            }
            let kept = if let Some(r) = self.write_leaf(item) {
                r.map_err(|e| e.at(Seg::Index(index)))?;
                true
            } else {
                let item = own(self.py, item);
                match self
                    .nested_dataclass(&item)
                    .map_err(|e| e.at(Seg::Index(index)))?
                {
                    Some(info) => self
                        .write_dataclass(&item, &info)
                        .map_err(|e| e.at(Seg::Index(index)))?,
                    None => {
                        self.write_value(&item).map_err(|e| e.at(Seg::Index(index)))?;
                        true
                    }
                }
            };
            if kept {
                count += 1;
            } else {
                self.buf.truncate(before);
            }
        }
        self.leave();
        if count == 0 {
            self.buf.truncate(start);
            return Ok(false);
        }
        self.buf.push(b']');
        Ok(true)
    }
}
