//! CPU kernel of the unary ops: the table's scalar function mapped over a view.

use crate::ops::UnaryOp;
use crate::{Error, HostData, Layout, Result};

use super::{float_map, strided};

pub fn unary(op: UnaryOp, data: &HostData, layout: &Layout) -> Result<HostData> {
    Ok(float_map!(op.name(), data, v => strided::map(v, layout, |x| op.apply(x))))
}
