//! Writing a GGUF v3 file: metadata in insertion order, tensor infos, then each tensor's bytes at
//! the next multiple of the alignment (32), as llama.cpp's `gguf_write_to_file` lays them out.

use std::io::Write;
use std::path::Path;

use tensor::quant::GgmlType;

use super::reader::{DEFAULT_ALIGNMENT, MAGIC};
use super::value::{Array, Value};
use crate::{Error, Result};

/// A GGUF file being assembled in memory.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_array(out: &mut Vec<u8>, a: &Array) {
    out.extend_from_slice(&a.elem_type().to_le_bytes());
    out.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            $v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()))
        };
    }
    match a {
        Array::U8(v) => each!(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
        Array::Bool(v) => v.iter().for_each(|&b| out.push(b as u8)),
        Array::String(v) => v.iter().for_each(|s| put_string(out, s)),
        Array::Array(v) => v.iter().for_each(|a| put_array(out, a)),
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_string(out, s),
        Value::Array(a) => put_array(out, a),
    }
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets a metadata value (replacing an earlier one of the same key, keeping its place).
    pub fn set(&mut self, key: &str, value: Value) {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
    }

    /// Whether a metadata value is set for `key`.
    pub fn has(&self, key: &str) -> bool {
        self.metadata.iter().any(|(k, _)| k == key)
    }

    /// Adds a tensor of row-major `shape` whose `bytes` are already encoded as `ty`.
    pub fn add_tensor(&mut self, name: &str, shape: &[usize], ty: GgmlType, bytes: Vec<u8>) -> Result<()> {
        let n: u64 = shape.iter().map(|&d| d as u64).product();
        if ty.bytes_for(n) != Some(bytes.len() as u64) || shape.last().is_some_and(|&d| d % ty.block_size() != 0) {
            return Err(Error::input(format!(
                "tensor {name}: shape {shape:?} of {ty} does not match its {} bytes (rows must be whole blocks of {})",
                bytes.len(),
                ty.block_size()
            )));
        }
        let dims = shape.iter().rev().map(|&d| d as u64).collect();
        self.tensors.push((name.to_string(), dims, ty, bytes));
        Ok(())
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let align = DEFAULT_ALIGNMENT;
        let mut head = Vec::new();
        head.extend_from_slice(&MAGIC);
        head.extend_from_slice(&3u32.to_le_bytes());
        head.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        head.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_string(&mut head, k);
            head.extend_from_slice(&v.type_id().to_le_bytes());
            put_value(&mut head, v);
        }
        let mut offset = 0u64;
        for (name, dims, ty, bytes) in &self.tensors {
            put_string(&mut head, name);
            head.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            dims.iter().for_each(|d| head.extend_from_slice(&d.to_le_bytes()));
            head.extend_from_slice(&ty.id().to_le_bytes());
            head.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + bytes.len() as u64).div_ceil(align) * align;
        }
        head.resize((head.len() as u64).div_ceil(align) as usize * align as usize, 0);
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let io = |e| Error::io(path, e);
        out.write_all(&head).map_err(io)?;
        for (_, _, _, bytes) in &self.tensors {
            out.write_all(bytes).map_err(io)?;
            let pad = (bytes.len() as u64).div_ceil(align) * align - bytes.len() as u64;
            out.write_all(&vec![0u8; pad as usize]).map_err(io)?;
        }
        out.flush().map_err(io)
    }
}
