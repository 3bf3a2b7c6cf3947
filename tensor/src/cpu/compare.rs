//! CPU kernels of comparisons (u32 0/1 out) and `where_cond`.

use crate::layout::StridedOffsets;
use crate::ops::CmpOp;
use crate::{Element, Error, HostData, Layout, Result, with_host_data};

use super::strided::zip_map;

pub fn compare(op: CmpOp, a: &HostData, la: &Layout, b: &HostData, lb: &Layout) -> Result<HostData> {
    Ok(HostData::U32(match (a, b) {
        (HostData::F32(x), HostData::F32(y)) => zip_map(x, la, y, lb, |p, q| op.apply(p, q) as u32),
        (HostData::F64(x), HostData::F64(y)) => zip_map(x, la, y, lb, |p, q| op.apply(p, q) as u32),
        (HostData::U32(x), HostData::U32(y)) => zip_map(x, la, y, lb, |p, q| op.apply(p, q) as u32),
        (HostData::I64(x), HostData::I64(y)) => zip_map(x, la, y, lb, |p, q| op.apply(p, q) as u32),
        (x, y) => {
            return Err(Error::dtype(op.name(), format!("unsupported operand dtypes {} and {}", x.dtype(), y.dtype())));
        }
    }))
}

pub fn where_cond(c: &HostData, lc: &Layout, t: &HostData, lt: &Layout, f: &HostData, lf: &Layout) -> Result<HostData> {
    // The mask as booleans first, whatever its dtype; then a zip of the two branches.
    let mask: Vec<bool> = with_host_data!(c, v => StridedOffsets::new(lc, 0).map(|i| v[i].as_f64() != 0.0).collect());
    fn pick<T: Element + Default>(mask: &[bool], t: &[T], lt: &Layout, f: &[T], lf: &Layout) -> Vec<T> {
        StridedOffsets::new(lt, 0)
            .zip(StridedOffsets::new(lf, 0))
            .zip(mask)
            .map(|((i, j), &m)| if m { t[i] } else { f[j] })
            .collect()
    }
    Ok(match (t, f) {
        (HostData::F32(x), HostData::F32(y)) => HostData::F32(pick(&mask, x, lt, y, lf)),
        (HostData::F64(x), HostData::F64(y)) => HostData::F64(pick(&mask, x, lt, y, lf)),
        (HostData::U32(x), HostData::U32(y)) => HostData::U32(pick(&mask, x, lt, y, lf)),
        (HostData::I64(x), HostData::I64(y)) => HostData::I64(pick(&mask, x, lt, y, lf)),
        (x, y) => {
            return Err(Error::dtype(
                "where_cond",
                format!("unsupported branch dtypes {} and {}", x.dtype(), y.dtype()),
            ));
        }
    })
}
