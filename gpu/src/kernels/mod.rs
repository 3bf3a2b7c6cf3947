//! The kernel families, one launcher file each named like `tensor/src/ops/<family>.rs` (a test,
//! `tests/op_families.rs`, compares the listings), with its `.wgsl` bodies beside it; `copy.rs`
//! holds the data movement every family uses (strided copies, fills, casts).
//! A kernel's source is `common.wgsl`, then a small generated piece (the op's expression, the
//! element types), then the family's body: plain concatenation, no template language. Shapes
//! and strides travel as uniforms, so one pipeline serves every shape.

pub mod attention;
pub mod binary;
pub mod compare;
pub mod concat;
pub mod copy;
pub mod cumsum;
pub mod glu;
pub mod index;
pub mod matmul;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod softmax;
pub mod topk;
pub mod unary;

use bytemuck::{Pod, Zeroable};
use tensor::layout::coalesce;
use tensor::{Error, Layout, Result};

pub const COMMON: &str = include_str!("common.wgsl");

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
    pub fn merged(op: &str, layouts: &[&Layout]) -> Result<Vec<LayoutUniform>> {
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
