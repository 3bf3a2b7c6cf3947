//! CPU kernel of the gated linear units: the f32 path is `vmath`'s vectorised one.

use crate::backend::GluActivation;
use crate::ops::UnaryOp;
use crate::{Error, HostData, Layout, Result};

use super::strided;
use super::vmath;

pub fn glu(gate: &HostData, lg: &Layout, up: &HostData, lu: &Layout, act: GluActivation) -> Result<HostData> {
    let op = match act {
        GluActivation::Silu => UnaryOp::Silu,
        GluActivation::GeluTanh => UnaryOp::GeluTanh,
    };
    Ok(match (gate, up) {
        (HostData::F32(g), HostData::F32(u)) => HostData::F32(vmath::glu(g, lg, u, lu, act)),
        (HostData::F64(g), HostData::F64(u)) => HostData::F64(strided::zip_map(g, lg, u, lu, |a, b| op.apply(a) * b)),
        (g, _) => return Err(Error::unsupported_dtype("glu", g.dtype())),
    })
}
