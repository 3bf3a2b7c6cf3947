//! CPU kernel of the inclusive prefix sum along an axis.

use crate::{Error, HostData, Layout, Result};

use super::{float_map, strided};

pub fn cumsum(data: &HostData, layout: &Layout, axis: usize) -> Result<HostData> {
    let (outer, k, inner) = strided::split_at_axis(layout.dims(), axis);
    Ok(float_map!("cumsum", data, v => {
        let mut x = strided::gather(v, layout);
        for o in 0..outer {
            for kk in 1..k {
                let (done, rest) = x.split_at_mut((o * k + kk) * inner);
                let prev = &done[(o * k + kk - 1) * inner..];
                for (a, &p) in rest[..inner].iter_mut().zip(prev) {
                    *a += p;
                }
            }
        }
        x
    }))
}
