//! Typed reads of config.json fields. Every failure names the file and the field and says what
//! was expected, so a wrong config ends in one clear line.

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The fields of one JSON object (the config, or its nested `text_config`), with the file name
/// for messages.
pub struct Fields<'a> {
    pub source: &'a str,
    pub map: &'a Map<String, Value>,
}

/// A value from the file as an error shows it: at most 40 characters, cut at a character
/// boundary (the text may hold multi-byte ones), so a hostile config cannot fill the terminal.
fn shortened(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &s[..at]),
        None => s.to_string(),
    }
}

/// A name from the file (a model type, an activation) as an error shows it: quoted, shortened.
pub fn quoted(s: &str) -> String {
    shortened(&format!("{s:?}"))
}

impl<'a> Fields<'a> {
    pub fn err(&self, field: &str, expected: &str, got: &Value) -> Error {
        let shown = match got {
            Value::String(s) => quoted(s),
            other => shortened(&other.to_string()),
        };
        Error::Config(format!("{}: field {field}: expected {expected}, got {shown}", self.source))
    }

    /// A list of layer numbers (`moe_layers`, `mlp_only_layers`), each below `num_layers`: an
    /// entry past the last layer is a config that does not describe the model it claims to.
    pub fn layer_list(&self, field: &str, num_layers: usize) -> Result<Option<Vec<usize>>> {
        let list = self.usize_list(field)?;
        if let Some(&bad) = list.iter().flatten().find(|&&i| i >= num_layers) {
            return Err(Error::Config(format!(
                "{}: field {field}: expected layer numbers below num_hidden_layers ({num_layers}; layers count from 0), got {bad}",
                self.source
            )));
        }
        Ok(list)
    }

    /// The value, treating JSON null like an absent field.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    pub fn usize_opt(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                // Sizes beyond 2^40 are no model's; refusing them keeps every later product finite.
                Some(n) if n < (1u64 << 40) => Ok(Some(n as usize)),
                _ => Err(self.err(field, "a non-negative integer below 2^40", v)),
            },
        }
    }

    pub fn usize(&self, field: &str) -> Result<usize> {
        self.usize_opt(field)?.ok_or_else(|| Error::Config(format!("{}: missing required field {field}", self.source)))
    }

    pub fn usize_or(&self, field: &str, default: usize) -> Result<usize> {
        Ok(self.usize_opt(field)?.unwrap_or(default))
    }

    pub fn f64_opt(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.err(field, "a number", v)),
            },
        }
    }

    pub fn f64_or(&self, field: &str, default: f64) -> Result<f64> {
        Ok(self.f64_opt(field)?.unwrap_or(default))
    }

    pub fn bool_or(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            // Llama 4 Scout stores attn_temperature_tuning as the integer 4 (truthy in Python).
            Some(Value::Number(n)) => Ok(n.as_f64().is_some_and(|x| x != 0.0)),
            Some(v) => Err(self.err(field, "true or false", v)),
        }
    }

    pub fn str_opt(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.err(field, "a string", v)),
        }
    }

    pub fn object(&self, field: &str) -> Result<Option<Fields<'a>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields { source: self.source, map })),
            Some(v) => Err(self.err(field, "an object", v)),
        }
    }

    /// A list of integers (layer indices, 0/1 flags).
    pub fn usize_list(&self, field: &str) -> Result<Option<Vec<usize>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|&n| n < (1u64 << 40))
                        .map(|n| n as usize)
                        .ok_or_else(|| self.err(field, "a list of non-negative integers", v))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.err(field, "a list of integers", v)),
        }
    }

    pub fn str_list(&self, field: &str) -> Result<Option<Vec<&'a str>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or_else(|| self.err(field, "a list of strings", v)))
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.err(field, "a list of strings", v)),
        }
    }

    /// An id or a list of ids (`eos_token_id` is either).
    pub fn ids(&self, field: &str) -> Result<Vec<u32>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|&n| n <= u32::MAX as u64)
                        .map(|n| n as u32)
                        .ok_or_else(|| self.err(field, "token ids", v))
                })
                .collect(),
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= u32::MAX as u64)
                .map(|n| vec![n as u32])
                .ok_or_else(|| self.err(field, "a token id or a list of them", v)),
        }
    }
}
