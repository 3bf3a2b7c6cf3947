//! CPU kernel of the unary ops: the table's scalar function mapped over a view.

use crate::ops::UnaryOp;
use crate::{Error, HostData, Layout, Result};

use super::vmath::{self, Act};
use super::{float_map, isa, strided};

/// The ops `vmath` vectorises.
fn vectorised(op: UnaryOp) -> Option<Act> {
    match op {
        UnaryOp::Exp => Some(Act::Exp),
        UnaryOp::Sigmoid => Some(Act::Sigmoid),
        UnaryOp::Silu => Some(Act::Silu),
        UnaryOp::GeluTanh => Some(Act::GeluTanh),
        _ => None,
    }
}

pub fn unary(op: UnaryOp, data: &HostData, layout: &Layout) -> Result<HostData> {
    // exp and the sigmoid family on contiguous f32: the vectorised kernels.
    if let (HostData::F32(v), Some(act)) = (data, vectorised(op)) {
        let isa = isa::active();
        if let Some(range) = layout.contiguous_range() {
            let src = &v[range];
            let mut out = super::pool::overwritten(src.len());
            strided::for_each_chunk(&mut out, |start, chunk| {
                vmath::apply(isa, act, &src[start..start + chunk.len()], None, chunk)
            });
            return Ok(HostData::F32(out));
        }
    }
    Ok(float_map!(op.name(), data, v => strided::map(v, layout, |x| op.apply(x))))
}
