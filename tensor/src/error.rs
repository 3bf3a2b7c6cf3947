//! The one error type of the tensor crate: every message names the op and the shapes involved.

use std::borrow::Cow;

use crate::DType;

/// What went wrong, and in which op.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Shapes that do not fit the op (broadcasting, matmul inner dims, bad axis, bad reshape).
    Shape { op: String, msg: String },
    /// A dtype the op does not accept, or operands of different dtypes.
    DType { op: String, msg: String },
    /// An index out of range (token ids, gather indices, narrow bounds).
    Index { op: String, msg: String },
    /// Operands on different devices, or a device that cannot do what was asked.
    Device { op: String, msg: String },
    /// The backend itself failed (GPU validation, out of memory, lost device).
    Backend { op: String, msg: String },
    /// The backend does not provide this op; the caller may fall back to a composite. Kept in
    /// `Cow`s so the common case, a static op name and reason, allocates nothing: fused ops
    /// return it on every call where a device lacks their kernel (several times a decoded
    /// token on the CPU), and the caller drops it for the composite.
    Unsupported { op: Cow<'static, str>, msg: Cow<'static, str> },
}

impl Error {
    pub fn shape(op: &str, msg: impl Into<String>) -> Error {
        Error::Shape { op: op.to_string(), msg: msg.into() }
    }
    pub fn dtype(op: &str, msg: impl Into<String>) -> Error {
        Error::DType { op: op.to_string(), msg: msg.into() }
    }
    pub fn index(op: &str, msg: impl Into<String>) -> Error {
        Error::Index { op: op.to_string(), msg: msg.into() }
    }
    pub fn device(op: &str, msg: impl Into<String>) -> Error {
        Error::Device { op: op.to_string(), msg: msg.into() }
    }
    pub fn backend(op: &str, msg: impl Into<String>) -> Error {
        Error::Backend { op: op.to_string(), msg: msg.into() }
    }
    pub fn unsupported(op: impl Into<Cow<'static, str>>, msg: impl Into<Cow<'static, str>>) -> Error {
        Error::Unsupported { op: op.into(), msg: msg.into() }
    }

    /// An op that does not accept this dtype.
    pub fn unsupported_dtype(op: &str, dtype: DType) -> Error {
        Error::dtype(op, format!("dtype {dtype} is not supported"))
    }

    /// The op name this error is about.
    pub fn op(&self) -> &str {
        match self {
            Error::Shape { op, .. }
            | Error::DType { op, .. }
            | Error::Index { op, .. }
            | Error::Device { op, .. }
            | Error::Backend { op, .. } => op,
            Error::Unsupported { op, .. } => op,
        }
    }

    pub fn is_unsupported(&self) -> bool {
        matches!(self, Error::Unsupported { .. })
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Shape { op, msg }
            | Error::DType { op, msg }
            | Error::Index { op, msg }
            | Error::Device { op, msg }
            | Error::Backend { op, msg } => write!(f, "{op}: {msg}"),
            Error::Unsupported { op, msg } => write!(f, "{op}: {msg}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `[f(0), .., f(N - 1)]`, or the first error: an array built by fallible steps (std's
/// `array::try_from_fn` is unstable), so a decoding step's few results need no list.
pub fn try_array<T, const N: usize>(mut f: impl FnMut(usize) -> Result<T>) -> Result<[T; N]> {
    let mut out: [Option<T>; N] = std::array::from_fn(|_| None);
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = Some(f(i)?);
    }
    Ok(out.map(|t| t.unwrap_or_else(|| unreachable!("every slot was filled"))))
}
