//! CPU kernel of softmax and log-softmax over the last axis, one row per task.

use rayon::prelude::*;

use crate::{Error, FloatElement, HostData, Layout, Result};

use super::isa::{self, Isa};
use super::{float_map, strided, vmath};

pub fn softmax(data: &HostData, layout: &Layout, log: bool) -> Result<HostData> {
    let d = layout.dims().last().copied().unwrap_or(1);
    if let HostData::F32(v) = data {
        let mut x = strided::gather(v, layout);
        let isa = isa::active();
        if d > 0 {
            if x.len() >= strided::PARALLEL_MIN {
                x.par_chunks_mut(d).for_each(|row| softmax_row_f32(isa, row, log));
            } else {
                x.chunks_mut(d).for_each(|row| softmax_row_f32(isa, row, log));
            }
        }
        return Ok(HostData::F32(x));
    }
    Ok(float_map!("softmax", data, v => {
        let mut x = strided::gather(v, layout);
        if d > 0 {
            if x.len() >= strided::PARALLEL_MIN {
                x.par_chunks_mut(d).for_each(|row| softmax_row(row, log));
            } else {
                x.chunks_mut(d).for_each(|row| softmax_row(row, log));
            }
        }
        x
    }))
}

/// In place: subtract the max so every exponent is <= 0 and nothing overflows.
fn softmax_row<T: FloatElement>(row: &mut [T], log: bool) {
    let max = row.iter().fold(T::neg_infinity(), |m, &x| if x > m { x } else { m });
    // A row of -inf (everything masked) has no finite max; shifting by 0 then gives NaN, as
    // PyTorch does, rather than inventing a distribution.
    let shift = if max.is_finite() { max } else { T::zero() };
    if log {
        let sum: T = row.iter().map(|&x| (x - shift).exp()).sum();
        let log_sum = sum.ln();
        for x in row.iter_mut() {
            *x = *x - shift - log_sum;
        }
    } else {
        let mut sum = T::zero();
        for x in row.iter_mut() {
            *x = (*x - shift).exp();
            sum = sum + *x;
        }
        let inv = sum.recip();
        for x in row.iter_mut() {
            *x = *x * inv;
        }
    }
}

/// `softmax_row` for f32 with the vectorised max, exp and scaling of `vmath`.
fn softmax_row_f32(isa: Isa, row: &mut [f32], log: bool) {
    let max = vmath::max(isa, row);
    let shift = if max.is_finite() { max } else { 0.0 };
    if log {
        let log_sum = vmath::exp_shifted_total(isa, row, shift).ln();
        row.iter_mut().for_each(|x| *x = *x - shift - log_sum);
    } else {
        let sum = vmath::exp_shifted_sum(isa, row, shift);
        vmath::scale(isa, row, sum.recip(), None);
    }
}
