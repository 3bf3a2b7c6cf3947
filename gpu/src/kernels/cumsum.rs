//! Launcher of `cumsum` along an axis, on the reductions' view of a tensor as
//! [outer, k, inner]. Tolerance against the CPU ~1e-6 relative (sums in another order).

use std::sync::Arc;

use tensor::{BufferRef, DType, Error, Result, Src};

use super::reduce::{PARAMS, Params, around_axis};
use super::{grid_1d, source};
use crate::backend::GpuBackend;

const CUMSUM: &str = include_str!("cumsum.wgsl");

fixed_kernel!(Cumsum, "cumsum", [Read, ReadWrite], source(PARAMS, CUMSUM));

pub fn cumsum(b: &GpuBackend, src: Src, axis: usize) -> Result<BufferRef> {
    const OP: &str = "cumsum";
    if src.dtype != DType::F32 {
        return Err(Error::unsupported_dtype(OP, src.dtype));
    }
    let (input, _keep, [outer, k, inner]) = around_axis(b, OP, src, axis)?;
    let out = b.alloc(OP, src.layout.elem_count(), DType::F32)?;
    if outer * inner > 0 {
        let kernel = b.kernel(&Cumsum)?;
        let params = Params { outer: outer as u32, k: k as u32, inner: inner as u32, pad: 0 };
        b.dispatch(OP, kernel, &params, &[&input, &out.buffer], grid_1d(outer * inner))?;
    }
    Ok(Arc::new(out))
}
