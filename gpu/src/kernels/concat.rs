//! Launcher of `concat`: each part copied into its slot of the output by the strided copy.
//! Exact.

use std::sync::Arc;

use tensor::{BufferRef, Error, Layout, Result, Shape, Src};

use super::copy::copy_view;
use crate::backend::GpuBackend;

/// Joins views along `axis`: each part copied into its slot of the output.
pub fn concat(b: &GpuBackend, parts: &[Src], axis: usize) -> Result<BufferRef> {
    const OP: &str = "cat";
    let first = parts.first().ok_or_else(|| Error::shape(OP, "no parts"))?;
    let mut dims = first.layout.dims().to_vec();
    dims[axis] = parts.iter().map(|p| p.layout.dims()[axis]).sum();
    let total = Layout::contiguous(Shape::new(dims));
    let out = b.alloc(OP, total.elem_count(), first.dtype)?;
    let mut start = 0;
    for part in parts {
        let len = part.layout.dims()[axis];
        copy_view(b, OP, *part, &out, &total.narrow(axis, start, len)?)?;
        start += len;
    }
    Ok(Arc::new(out))
}
