//! CPU kernel of the binary ops: the table's scalar function zipped over two same-shape views.

use crate::ops::BinaryOp;
use crate::{Error, HostData, Layout, Result};

use num_traits::Float;

use super::strided::zip_map;

pub fn binary(op: BinaryOp, a: &HostData, la: &Layout, b: &HostData, lb: &Layout) -> Result<HostData> {
    let int_op = |msg: &str| Error::dtype(op.name(), format!("{msg} for integer tensors"));
    Ok(match (a, b) {
        (HostData::F32(x), HostData::F32(y)) => HostData::F32(float_binary(op, x, la, y, lb)),
        (HostData::F64(x), HostData::F64(y)) => HostData::F64(float_binary(op, x, la, y, lb)),
        (HostData::U32(x), HostData::U32(y)) => {
            if op == BinaryOp::Pow {
                return Err(int_op("pow is not defined"));
            }
            HostData::U32(zip_map(x, la, y, lb, |p, q| op.apply_int(p, q).unwrap_or(0)))
        }
        (HostData::I64(x), HostData::I64(y)) => {
            if op == BinaryOp::Pow {
                return Err(int_op("pow is not defined"));
            }
            HostData::I64(zip_map(x, la, y, lb, |p, q| op.apply_int(p, q).unwrap_or(0)))
        }
        (x, y) => {
            return Err(Error::dtype(op.name(), format!("unsupported operand dtypes {} and {}", x.dtype(), y.dtype())));
        }
    })
}

/// The four arithmetic ops get a kernel each, so the op is chosen once per call rather than
/// per element and the inner loop vectorises; the rest share the table's function.
fn float_binary<T: Float + Send + Sync + Default + 'static>(
    op: BinaryOp,
    x: &[T],
    la: &Layout,
    y: &[T],
    lb: &Layout,
) -> Vec<T> {
    match op {
        BinaryOp::Add => zip_map(x, la, y, lb, |p, q| p + q),
        BinaryOp::Sub => zip_map(x, la, y, lb, |p, q| p - q),
        BinaryOp::Mul => zip_map(x, la, y, lb, |p, q| p * q),
        BinaryOp::Div => zip_map(x, la, y, lb, |p, q| p / q),
        _ => zip_map(x, la, y, lb, |p, q| op.apply(p, q)),
    }
}
