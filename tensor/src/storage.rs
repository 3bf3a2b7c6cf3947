//! Storage: typed data on the host (`HostData`), and the opaque `Buffer` a backend keeps its
//! memory in. Layout and storage are separate: a tensor is a `Layout` over a shared `Buffer`.

use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use half::{bf16, f16};

use crate::cpu::pool;
use crate::{DType, Element, Error, Result};

/// Elements of one dtype in host memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
    U32(Vec<u32>),
    I64(Vec<i64>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a `HostData`, whatever its dtype.
/// The one place the crate matches on every dtype; kernels are generic functions called from it.
#[macro_export]
macro_rules! with_host_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::HostData::F32($v) => $body,
            $crate::HostData::F64($v) => $body,
            $crate::HostData::BF16($v) => $body,
            $crate::HostData::F16($v) => $body,
            $crate::HostData::U32($v) => $body,
            $crate::HostData::I64($v) => $body,
        }
    };
}

impl HostData {
    pub fn dtype(&self) -> DType {
        match self {
            HostData::F32(_) => DType::F32,
            HostData::F64(_) => DType::F64,
            HostData::BF16(_) => DType::BF16,
            HostData::F16(_) => DType::F16,
            HostData::U32(_) => DType::U32,
            HostData::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        with_host_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw little-endian bytes (what safetensors files and GPU uploads hold).
    pub fn as_bytes(&self) -> &[u8] {
        with_host_data!(self, v => bytemuck::cast_slice(v))
    }

    /// Reads elements of `dtype` from raw little-endian bytes.
    pub fn from_bytes(dtype: DType, bytes: &[u8]) -> Result<HostData> {
        let size = dtype.size_in_bytes();
        if !bytes.len().is_multiple_of(size) {
            return Err(Error::dtype(
                "from_bytes",
                format!("{} bytes is not a whole number of {dtype} elements", bytes.len()),
            ));
        }
        fn read<T: Element>(bytes: &[u8]) -> Vec<T> {
            // Copied byte for byte into fresh capacity: memory-mapped files give unaligned input,
            // and filling the vector with zeros first (as `bytemuck::pod_collect_to_vec` does)
            // would write every page of a checkpoint twice.
            let n = bytes.len() / std::mem::size_of::<T>();
            let mut out = Vec::<T>::with_capacity(n);
            crate::cpu::huge_pages::advise(out.as_mut_ptr().cast::<u8>(), bytes.len());
            // SAFETY: the capacity holds n elements, i.e. bytes.len() bytes, written in full
            // before the length is set; every T here is plain old data, valid for any bits.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes.len());
                out.set_len(n);
            }
            out
        }
        Ok(match dtype {
            DType::F32 => HostData::F32(read(bytes)),
            DType::F64 => HostData::F64(read(bytes)),
            DType::BF16 => HostData::BF16(read(bytes)),
            DType::F16 => HostData::F16(read(bytes)),
            DType::U32 => HostData::U32(read(bytes)),
            DType::I64 => HostData::I64(read(bytes)),
        })
    }

    /// `n` zeros of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> HostData {
        HostData::filled(dtype, n, 0.0)
    }

    /// `n` copies of `value` converted to `dtype`.
    pub fn filled(dtype: DType, n: usize, value: f64) -> HostData {
        fn fill<T: Element>(n: usize, value: f64) -> Vec<T> {
            vec![T::from_f64_value(value); n]
        }
        match dtype {
            DType::F32 => HostData::F32(fill(n, value)),
            DType::F64 => HostData::F64(fill(n, value)),
            DType::BF16 => HostData::BF16(fill(n, value)),
            DType::F16 => HostData::F16(fill(n, value)),
            DType::U32 => HostData::U32(fill(n, value)),
            DType::I64 => HostData::I64(fill(n, value)),
        }
    }

    /// The typed slice, when `T` is this data's element type.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        with_host_data!(self, v => (v as &dyn Any).downcast_ref::<Vec<T>>().map(|v| v.as_slice()))
    }

    /// Wraps a typed vector.
    pub fn from_vec<T: Element>(v: Vec<T>) -> HostData {
        let any: Box<dyn Any> = Box::new(v);
        match T::DTYPE {
            DType::F32 => HostData::F32(*downcast(any)),
            DType::F64 => HostData::F64(*downcast(any)),
            DType::BF16 => HostData::BF16(*downcast(any)),
            DType::F16 => HostData::F16(*downcast(any)),
            DType::U32 => HostData::U32(*downcast(any)),
            DType::I64 => HostData::I64(*downcast(any)),
        }
    }

    /// Converts every element to `T` (through f64 for floats, which is exact for every pair
    /// of our types except i64 beyond 2^53).
    pub fn to_vec<T: Element>(&self) -> Vec<T> {
        if let Some(s) = self.as_slice::<T>() {
            return s.to_vec();
        }
        with_host_data!(self, v => v.iter().map(|x| T::from_f64_value(x.as_f64())).collect())
    }

    /// This data converted to `dtype` (rounding to nearest for bf16/f16; truncating floats to
    /// integers as Rust's `as` does).
    ///
    /// Between f32 and the half types the conversion is done a slice at a time (F16C's
    /// `vcvtph2ps` / `vcvtps2ph` where the CPU has them; bf16 widened by a shift), not through
    /// f64 per element: a prefill over an f16 KV cache widens every cached key and value, and
    /// that went at a few hundred MB/s.
    pub fn cast(&self, dtype: DType) -> HostData {
        use half::slice::HalfFloatSliceExt;
        match dtype {
            DType::F32 => HostData::F32(match self {
                HostData::F16(v) => {
                    let mut out = pool::overwritten::<f32>(v.len());
                    v.convert_to_f32_slice(&mut out);
                    out
                }
                // Exact: bf16 is the top half of an f32.
                HostData::BF16(v) => {
                    pool::collect(v.len(), v.iter().map(|x| f32::from_bits(u32::from(x.to_bits()) << 16)))
                }
                other => other.to_vec(),
            }),
            DType::F64 => HostData::F64(self.to_vec()),
            DType::BF16 => HostData::BF16(match self {
                HostData::F32(v) => pool::collect(v.len(), v.iter().map(|&x| bf16::from_f32(x))),
                other => other.to_vec(),
            }),
            DType::F16 => HostData::F16(match self {
                HostData::F32(v) => {
                    let mut out = pool::overwritten::<f16>(v.len());
                    out.convert_from_f32_slice(v);
                    out
                }
                other => other.to_vec(),
            }),
            DType::U32 => HostData::U32(self.to_vec()),
            DType::I64 => HostData::I64(match self {
                HostData::U32(v) => v.iter().map(|&x| x as i64).collect(),
                other => other.to_vec(),
            }),
        }
    }
}

fn downcast<T: 'static>(any: Box<dyn Any>) -> Box<T> {
    match any.downcast::<T>() {
        Ok(v) => v,
        Err(_) => unreachable!("Element::DTYPE matches the Rust type"),
    }
}

/// A backend's memory for one tensor's storage: host memory on the CPU, a wgpu buffer on a GPU.
/// Tensors share buffers through `Arc`; backends downcast to their own type with `as_any`.
pub trait Buffer: Any + Send + Sync + std::fmt::Debug {
    fn as_any(&self) -> &dyn Any;
    /// Bytes held, for memory accounting.
    fn size_in_bytes(&self) -> usize;
}

pub type BufferRef = Arc<dyn Buffer>;

/// The CPU backend's buffer: host data behind a lock, so the rare in-place writes (a KV cache
/// filling its slots, an optimizer's step) can happen while readers share the buffer.
#[derive(Debug)]
pub struct CpuBuffer {
    data: RwLock<HostData>,
}

impl CpuBuffer {
    pub fn new(data: HostData) -> CpuBuffer {
        CpuBuffer { data: RwLock::new(data) }
    }

    pub fn read(&self) -> RwLockReadGuard<'_, HostData> {
        self.data.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, HostData> {
        self.data.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Buffer for CpuBuffer {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn size_in_bytes(&self) -> usize {
        let data = self.read();
        data.len() * data.dtype().size_in_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice conversions give what the per-element ones give, bit for bit: NaN, infinities,
    /// signed zeros, subnormals of both types, values that round to the f16 range's edge and
    /// past it, and ties to even; lengths that leave a SIMD tail.
    #[test]
    fn slice_casts_match_element_casts() {
        let mut values = vec![
            0.0f32,
            -0.0,
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-40,
            -3e-8,
            6e-8,
            65504.0,
            65519.0,
            65520.0,
            1e6,
            1.0 + f32::EPSILON,
            2049.0,
            2051.0,
            -1.5e-5,
        ];
        values.extend((0..1000).map(|i| ((i as f32) * 0.37).sin() * 10f32.powi(i % 12 - 6)));
        for n in [0, 1, 7, 16, 17, values.len()] {
            let v = &values[..n];
            let halves = HostData::F32(v.to_vec()).cast(DType::F16);
            let HostData::F16(h) = &halves else { panic!("f16") };
            let expect: Vec<u16> = v.iter().map(|&x| f16::from_f32(x).to_bits()).collect();
            assert_eq!(h.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expect, "f32 -> f16, {n}");
            let HostData::F32(back) = halves.cast(DType::F32) else { panic!("f32") };
            let expect: Vec<u32> = h.iter().map(|x| x.to_f32().to_bits()).collect();
            assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expect, "f16 -> f32, {n}");
            let brains = HostData::F32(v.to_vec()).cast(DType::BF16);
            let HostData::BF16(b) = &brains else { panic!("bf16") };
            let HostData::F32(back) = brains.cast(DType::F32) else { panic!("f32") };
            let expect: Vec<u32> = b.iter().map(|x| x.to_f32().to_bits()).collect();
            assert_eq!(back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), expect, "bf16 -> f32, {n}");
        }
    }
}
