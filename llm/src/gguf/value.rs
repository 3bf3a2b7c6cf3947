//! GGUF metadata values: the thirteen value types of the format (`gguf_type`), arrays typed by
//! their element type so a 150k-entry vocabulary is a `Vec<String>`, not 150k tagged values.

/// The value type ids GGUF stores before each value.
pub(crate) mod ty {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(Array),
}

/// An array value, by element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
    Array(Vec<Array>),
}

impl Value {
    /// The GGUF value type id.
    pub fn type_id(&self) -> u32 {
        match self {
            Value::U8(_) => ty::U8,
            Value::I8(_) => ty::I8,
            Value::U16(_) => ty::U16,
            Value::I16(_) => ty::I16,
            Value::U32(_) => ty::U32,
            Value::I32(_) => ty::I32,
            Value::F32(_) => ty::F32,
            Value::Bool(_) => ty::BOOL,
            Value::String(_) => ty::STRING,
            Value::Array(_) => ty::ARRAY,
            Value::U64(_) => ty::U64,
            Value::I64(_) => ty::I64,
            Value::F64(_) => ty::F64,
        }
    }

    /// An integer value of any width and sign, when it is a non-negative integer (counts,
    /// lengths and ids are written as u32 by llama.cpp's converter, but other writers differ).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A numeric value as f64 (floats, and integers exactly up to 2^53).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A short description for `inspect` and messages: the value, or an array's type and length.
    pub fn summary(&self) -> String {
        match self {
            Value::String(s) if s.chars().count() > 60 => format!("{:?}...", s.chars().take(60).collect::<String>()),
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!("[{}; {}]", a.type_name(), a.len()),
            Value::U8(v) => v.to_string(),
            Value::I8(v) => v.to_string(),
            Value::U16(v) => v.to_string(),
            Value::I16(v) => v.to_string(),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
        }
    }
}

impl Array {
    pub fn len(&self) -> usize {
        match self {
            Array::U8(v) => v.len(),
            Array::I8(v) => v.len(),
            Array::U16(v) => v.len(),
            Array::I16(v) => v.len(),
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Array(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type id.
    pub fn elem_type(&self) -> u32 {
        match self {
            Array::U8(_) => ty::U8,
            Array::I8(_) => ty::I8,
            Array::U16(_) => ty::U16,
            Array::I16(_) => ty::I16,
            Array::U32(_) => ty::U32,
            Array::I32(_) => ty::I32,
            Array::F32(_) => ty::F32,
            Array::Bool(_) => ty::BOOL,
            Array::String(_) => ty::STRING,
            Array::U64(_) => ty::U64,
            Array::I64(_) => ty::I64,
            Array::F64(_) => ty::F64,
            Array::Array(_) => ty::ARRAY,
        }
    }

    pub fn type_name(&self) -> &'static str {
        type_name(self.elem_type())
    }

    /// Integer elements of any type as i64 (token types, per-layer counts).
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        Some(match self {
            Array::U8(v) => v.iter().map(|&x| x.into()).collect(),
            Array::I8(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U16(v) => v.iter().map(|&x| x.into()).collect(),
            Array::I16(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U32(v) => v.iter().map(|&x| x.into()).collect(),
            Array::I32(v) => v.iter().map(|&x| x.into()).collect(),
            Array::U64(v) => v.iter().map(|&x| i64::try_from(x).ok()).collect::<Option<_>>()?,
            Array::I64(v) => v.clone(),
            Array::Bool(v) => v.iter().map(|&x| x.into()).collect(),
            _ => return None,
        })
    }

    /// Numeric elements as f32 (token scores).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match self {
            Array::F32(v) => Some(v.clone()),
            Array::F64(v) => Some(v.iter().map(|&x| x as f32).collect()),
            _ => self.to_i64().map(|v| v.into_iter().map(|x| x as f32).collect()),
        }
    }

    pub fn strings(&self) -> Option<&[String]> {
        match self {
            Array::String(v) => Some(v),
            _ => None,
        }
    }
}

/// The name of a value type id, for messages.
pub fn type_name(id: u32) -> &'static str {
    match id {
        ty::U8 => "u8",
        ty::I8 => "i8",
        ty::U16 => "u16",
        ty::I16 => "i16",
        ty::U32 => "u32",
        ty::I32 => "i32",
        ty::F32 => "f32",
        ty::BOOL => "bool",
        ty::STRING => "string",
        ty::ARRAY => "array",
        ty::U64 => "u64",
        ty::I64 => "i64",
        ty::F64 => "f64",
        _ => "unknown",
    }
}
