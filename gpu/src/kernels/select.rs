//! Launcher of `where_cond`. Exact.

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use tensor::{BufferRef, DType, Error, Result, Src};

use super::{LayoutUniform, grid_1d, source};
use crate::backend::GpuBackend;
use crate::pipelines::Access;

const BODY: &str = include_str!("select.wgsl");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n: u32,
    pad: [u32; 3],
    cond: LayoutUniform,
    a: LayoutUniform,
    b: LayoutUniform,
}

fn wgsl_type(dtype: DType) -> Result<&'static str> {
    match dtype {
        DType::F32 => Ok("f32"),
        DType::U32 => Ok("u32"),
        other => Err(Error::unsupported_dtype("where_cond", other)),
    }
}

pub fn where_cond(b: &GpuBackend, cond: Src, on_true: Src, on_false: Src) -> Result<BufferRef> {
    const OP: &str = "where_cond";
    let (c, t) = (wgsl_type(cond.dtype)?, wgsl_type(on_true.dtype)?);
    let n = cond.layout.elem_count();
    let out = b.alloc(OP, n, on_true.dtype)?;
    if n > 0 {
        let kernel = b.kernel(
            &format!("where/{c}/{t}"),
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
            || source(&format!("alias C = {c};\nalias T = {t};"), BODY),
        )?;
        let layouts = LayoutUniform::merged(OP, &[cond.layout, on_true.layout, on_false.layout])?;
        let params = Params { n: n as u32, pad: [0; 3], cond: layouts[0], a: layouts[1], b: layouts[2] };
        let buffers = [
            &b.buffer(OP, &cond)?.buffer,
            &b.buffer(OP, &on_true)?.buffer,
            &b.buffer(OP, &on_false)?.buffer,
            &out.buffer,
        ];
        b.dispatch(OP, kernel, &params, &buffers, grid_1d(n))?;
    }
    Ok(Arc::new(out))
}
