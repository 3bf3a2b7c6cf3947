//! Element types. `f32` is the working type; `f64` exists for gradient checks; `bf16` and `f16`
//! are storage types (checkpoints ship in them); `u32` and `i64` hold token ids and indices.

use half::{bf16, f16};

/// The type of every element of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    BF16,
    F16,
    U32,
    I64,
}

impl DType {
    pub const ALL: [DType; 6] = [DType::F32, DType::F64, DType::BF16, DType::F16, DType::U32, DType::I64];

    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// Floating-point types, including the 16-bit storage types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }

    /// The 16-bit storage types: arithmetic on them is carried out in f32.
    pub fn is_half(self) -> bool {
        matches!(self, DType::BF16 | DType::F16)
    }

    /// Integer types (ids and indices).
    pub fn is_int(self) -> bool {
        matches!(self, DType::U32 | DType::I64)
    }

    /// The name used in files and messages (`"f32"`, `"bf16"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::U32 => "u32",
            DType::I64 => "i64",
        }
    }

    /// Parses `"f32"`, `"float32"`, `"bf16"`, `"bfloat16"`, ... (case-insensitive).
    pub fn parse(name: &str) -> Option<DType> {
        match name.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Some(DType::F32),
            "f64" | "float64" | "double" => Some(DType::F64),
            "bf16" | "bfloat16" => Some(DType::BF16),
            "f16" | "float16" | "half" => Some(DType::F16),
            "u32" | "uint32" => Some(DType::U32),
            "i64" | "int64" | "long" => Some(DType::I64),
            _ => None,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Rust type that can be the element of a tensor.
pub trait Element: Copy + Send + Sync + 'static + bytemuck::Pod + std::fmt::Debug {
    const DTYPE: DType;
    fn as_f64(self) -> f64;
    fn from_f64_value(v: f64) -> Self;
}

macro_rules! element {
    ($t:ty, $dtype:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
            fn as_f64(self) -> f64 {
                $to(self)
            }
            fn from_f64_value(v: f64) -> Self {
                $from(v)
            }
        }
    };
}

element!(f32, F32, |v: f32| v as f64, |v: f64| v as f32);
element!(f64, F64, |v: f64| v, |v: f64| v);
element!(bf16, BF16, |v: bf16| v.to_f64(), bf16::from_f64);
element!(f16, F16, |v: f16| v.to_f64(), f16::from_f64);
element!(u32, U32, |v: u32| v as f64, |v: f64| v as u32);
element!(i64, I64, |v: i64| v as f64, |v: f64| v as i64);

/// The float types the CPU kernels compute in (f32 and f64), generic through `num-traits`.
pub trait FloatElement: Element + num_traits::Float + num_traits::FromPrimitive + std::iter::Sum + Default {
    /// The error function, needed by the exact (erf) form of GELU.
    fn erf(self) -> Self;
}

impl FloatElement for f32 {
    fn erf(self) -> Self {
        crate::cpu::math::erf(self as f64) as f32
    }
}

impl FloatElement for f64 {
    fn erf(self) -> Self {
        crate::cpu::math::erf(self)
    }
}
