//! The kernel families, one launcher file each named like `tensor/src/ops/<family>.rs` (a test,
//! `tests/op_families.rs`, compares the listings), with its `.wgsl` bodies beside it; `copy.rs`
//! holds the data movement every family uses (strided copies, fills, casts).
//! A kernel's source is `common.wgsl`, then a small generated piece (the op's expression, the
//! element types), then the family's body: plain concatenation, no template language. Shapes
//! and strides travel as uniforms, so one pipeline serves every shape. Each family names its
//! kernels with a typed key (`crate::pipelines::KernelKey`) whose `source` renders that piece.

/// The key of a kernel that has no variants: a unit struct whose name, bindings and source are
/// fixed. `fixed_kernel!(Softmax, "softmax", [Read, ReadWrite], source("", BODY));`
macro_rules! fixed_kernel {
    ($(#[$doc:meta])* $key:ident, $name:literal, [$($access:ident),*], $source:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        struct $key;

        impl crate::pipelines::KernelKey for $key {
            fn name(&self) -> String {
                $name.into()
            }

            fn buffers(&self) -> &'static [crate::pipelines::Access] {
                &[$(crate::pipelines::Access::$access),*]
            }

            fn source(&self) -> String {
                $source
            }
        }
    };
}

pub mod attention;
pub mod binary;
pub mod compare;
pub mod concat;
pub mod copy;
pub mod cumsum;
pub mod glu;
pub mod index;
pub mod matmul;
pub mod qmatmul;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod topk;
pub mod unary;

use bytemuck::{Pod, Zeroable};
use tensor::layout::coalesce;
use tensor::{DType, Error, Layout, Result};

pub const COMMON: &str = include_str!("common.wgsl");

/// The 32-bit element types the generated kernels are specialised on (WGSL's `T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Elem {
    F32,
    U32,
}

impl Elem {
    /// The element type of `dtype`, or an error naming `op` for the dtypes these kernels lack.
    pub fn of(op: &str, dtype: DType) -> Result<Elem> {
        match dtype {
            DType::F32 => Ok(Elem::F32),
            DType::U32 => Ok(Elem::U32),
            other => Err(Error::unsupported_dtype(op, other)),
        }
    }

    pub fn wgsl(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::U32 => "u32",
        }
    }

    /// WGSL's test for NaN on a value `x` of this type, by the bits (`x != x` may be folded to
    /// false: WGSL lets a compiler assume floats are never NaN).
    pub fn nan_check(self) -> &'static str {
        match self {
            Elem::F32 => "(bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u",
            Elem::U32 => "false",
        }
    }
}

/// Most dims a layout uniform holds.
pub const MAX_RANK: usize = 8;

/// The WGSL `Layout` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LayoutUniform {
    pub offset: u32,
    pub rank: u32,
    pub pad: [u32; 2],
    pub dims: [u32; MAX_RANK],
    pub strides: [u32; MAX_RANK],
}

fn to_u32(op: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::backend(op, format!("size {v} exceeds the 32-bit indices the GPU kernels use")))
}

impl LayoutUniform {
    /// From explicit dims, strides and offset.
    pub fn new(op: &str, dims: &[usize], strides: &[usize], offset: usize) -> Result<LayoutUniform> {
        if dims.len() > MAX_RANK {
            return Err(Error::backend(
                op,
                format!("views of more than {MAX_RANK} non-mergeable dims are not supported on the GPU (got {dims:?})"),
            ));
        }
        let mut u = LayoutUniform { offset: to_u32(op, offset)?, rank: dims.len() as u32, ..Default::default() };
        for (i, (&d, &s)) in dims.iter().zip(strides).enumerate() {
            u.dims[i] = to_u32(op, d)?;
            u.strides[i] = to_u32(op, s)?;
        }
        Ok(u)
    }

    /// A layout as is.
    pub fn of(op: &str, layout: &Layout) -> Result<LayoutUniform> {
        LayoutUniform::new(op, layout.dims(), layout.strides(), layout.offset())
    }

    /// Several same-shape layouts with their adjacent contiguous dims merged (shorter loops).
    pub fn merged<const N: usize>(op: &str, layouts: [&Layout; N]) -> Result<Vec<LayoutUniform>> {
        let (dims, strides) = coalesce(layouts);
        layouts.iter().zip(&strides).map(|(l, s)| LayoutUniform::new(op, &dims, s, l.offset())).collect()
    }
}

/// The workgroup grid for `threads` threads in groups of 256, spread over two grid dims.
pub fn grid_1d(threads: usize) -> [u32; 3] {
    groups_2d(threads.div_ceil(256))
}

/// `groups` workgroups spread over two grid dims (each at most 65535).
pub fn groups_2d(groups: usize) -> [u32; 3] {
    let groups = groups.max(1);
    if groups <= 65_535 { [groups as u32, 1, 1] } else { [65_535, groups.div_ceil(65_535) as u32, 1] }
}

/// Assembles a kernel: the common prelude, the generated piece, the family body.
pub fn source(generated: &str, body: &str) -> String {
    format!("{COMMON}\n// ---- generated ----\n{generated}\n// ---- body ----\n{body}")
}
