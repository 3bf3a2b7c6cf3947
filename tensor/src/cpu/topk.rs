//! CPU kernel of top-k over the last axis: a partial selection, then a sort of the k winners.

use rayon::prelude::*;

use crate::{Element, Error, HostData, Layout, Result};

use super::strided;

pub fn topk(data: &HostData, layout: &Layout, k: usize) -> Result<(HostData, HostData)> {
    let n = layout.dims().last().copied().unwrap_or(1);
    fn run<T: Element + Default>(v: &[T], layout: &Layout, n: usize, k: usize) -> (Vec<T>, Vec<u32>) {
        let x = strided::gather(v, layout);
        let rows = x.len().checked_div(n).unwrap_or(0);
        let row = |r: usize| -> Vec<(T, u32)> {
            let row = &x[r * n..(r + 1) * n];
            // Larger first; among equals the lower index first; NaN counts as the largest.
            let order = |a: &u32, b: &u32| {
                let (va, vb) = (row[*a as usize].as_f64(), row[*b as usize].as_f64());
                vb.total_cmp(&va).then(a.cmp(b))
            };
            let mut idx: Vec<u32> = (0..n as u32).collect();
            if k < n && k > 0 {
                idx.select_nth_unstable_by(k - 1, order);
                idx.truncate(k);
            }
            idx.sort_unstable_by(order);
            idx.truncate(k);
            idx.into_iter().map(|i| (row[i as usize], i)).collect()
        };
        let picked: Vec<Vec<(T, u32)>> = if x.len() >= strided::PARALLEL_MIN {
            (0..rows).into_par_iter().map(row).collect()
        } else {
            (0..rows).map(row).collect()
        };
        picked.into_iter().flatten().unzip()
    }
    Ok(match data {
        HostData::F32(v) => {
            let (a, b) = run(v, layout, n, k);
            (HostData::F32(a), HostData::U32(b))
        }
        HostData::F64(v) => {
            let (a, b) = run(v, layout, n, k);
            (HostData::F64(a), HostData::U32(b))
        }
        HostData::U32(v) => {
            let (a, b) = run(v, layout, n, k);
            (HostData::U32(a), HostData::U32(b))
        }
        HostData::I64(v) => {
            let (a, b) = run(v, layout, n, k);
            (HostData::I64(a), HostData::U32(b))
        }
        other => return Err(Error::unsupported_dtype("topk", other.dtype())),
    })
}
