//! CPU kernel of the rotary position embedding: each row's pairs rotated by its position's
//! angles, rows in parallel.

use crate::{Error, FloatElement, HostData, Layout, Result};

use super::strided::{self, rows_mut};

/// `cos` and `sin` are the tables' buffers with the element offset of row 0 in each: rows of a
/// larger resident table, read in place.
pub fn rope(
    x: &HostData,
    lx: &Layout,
    (cos, cos_at): (&HostData, usize),
    (sin, sin_at): (&HostData, usize),
    interleaved: bool,
) -> Result<HostData> {
    fn run<T: FloatElement>(x: &[T], lx: &Layout, cos: &[T], sin: &[T], interleaved: bool) -> Vec<T> {
        let r = lx.rank();
        let (t, d) = (lx.dims()[r - 2], lx.dims()[r - 1]);
        let half = d / 2;
        let mut out = strided::gather(x, lx);
        rows_mut(&mut out, d, |row_index, row| {
            let pos = row_index % t;
            let (c, s) = (&cos[pos * half..(pos + 1) * half], &sin[pos * half..(pos + 1) * half]);
            for i in 0..half {
                let (ia, ib) = if interleaved { (2 * i, 2 * i + 1) } else { (i, i + half) };
                let (a, b) = (row[ia], row[ib]);
                row[ia] = a * c[i] - b * s[i];
                row[ib] = b * c[i] + a * s[i];
            }
        });
        out
    }
    Ok(match (x, cos, sin) {
        (HostData::F32(v), HostData::F32(c), HostData::F32(s)) => {
            HostData::F32(run(v, lx, &c[cos_at..], &s[sin_at..], interleaved))
        }
        (HostData::F64(v), HostData::F64(c), HostData::F64(s)) => {
            HostData::F64(run(v, lx, &c[cos_at..], &s[sin_at..], interleaved))
        }
        (v, _, _) => return Err(Error::unsupported_dtype("rope", v.dtype())),
    })
}
