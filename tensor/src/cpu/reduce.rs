//! CPU kernels of the reductions. The input is made contiguous and seen as
//! [outer, K, inner] around the reduced axis: with inner == 1 each output reduces one
//! contiguous row (split across 8 accumulators, which the compiler vectorises); otherwise whole
//! rows of `inner` are combined at a time.

use std::borrow::Cow;

use num_traits::{Bounded, NumCast, ToPrimitive, Zero};
use rayon::prelude::*;

use crate::ops::ReduceOp;
use crate::{Error, HostData, Layout, Result};

use super::strided::{self, PARALLEL_MIN, split_at_axis};

pub fn reduce(op: ReduceOp, data: &HostData, layout: &Layout, axis: usize) -> Result<HostData> {
    let (outer, k, inner) = split_at_axis(layout.dims(), axis);
    macro_rules! run {
        ($v:expr, $wrap:ident) => {{
            let x = in_place($v, layout);
            if op.is_arg() {
                HostData::U32(arg_reduce(op, &x, outer, k, inner))
            } else {
                HostData::$wrap(value_reduce(op, &x, outer, k, inner))
            }
        }};
    }
    Ok(match data {
        HostData::F32(v) if inner == 1 && k > 0 && matches!(op, ReduceOp::Max | ReduceOp::ArgMax) => {
            max_rows_f32(op, &in_place(v, layout), outer, k)
        }
        HostData::F32(v) => run!(v, F32),
        HostData::F64(v) => run!(v, F64),
        HostData::U32(v) => run!(v, U32),
        HostData::I64(v) => run!(v, I64),
        other => return Err(Error::unsupported_dtype(op.name(), other.dtype())),
    })
}

/// The input as the reductions read it: where it lies when contiguous, not copied first (over a
/// row of 151,936 f32 logits an argmax or a max took ~220 µs against 307-358 with the copy, Zen 4
/// EPYC, three rounds each), else gathered.
fn in_place<'a, T: Copy + Send + Sync + Default + 'static>(v: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    match layout.contiguous_range() {
        Some(range) => Cow::Borrowed(&v[range]),
        None => Cow::Owned(strided::gather(v, layout)),
    }
}

trait Num: Copy + Send + Sync + PartialOrd + Zero + Bounded + NumCast + ToPrimitive + std::ops::Add<Output = Self> {}
impl<T: Copy + Send + Sync + PartialOrd + Zero + Bounded + NumCast + ToPrimitive + std::ops::Add<Output = T>> Num
    for T
{
}

fn combine<T: Num>(op: ReduceOp, acc: T, x: T) -> T {
    match op {
        ReduceOp::Sum => acc + x,
        // NaN propagates as in NumPy: once the accumulator is NaN it stays, and a NaN candidate
        // (unordered against anything) replaces a number.
        ReduceOp::Max | ReduceOp::Min if acc.partial_cmp(&acc).is_none() => acc,
        ReduceOp::Max => match x.partial_cmp(&acc) {
            Some(std::cmp::Ordering::Greater) | None => x,
            _ => acc,
        },
        ReduceOp::Min => match x.partial_cmp(&acc) {
            Some(std::cmp::Ordering::Less) | None => x,
            _ => acc,
        },
        ReduceOp::ArgMax | ReduceOp::ArgMin => unreachable!("arg reductions track indices"),
    }
}

fn identity<T: Num>(op: ReduceOp) -> T {
    match op {
        ReduceOp::Sum => T::zero(),
        ReduceOp::Max => lowest::<T>(),
        ReduceOp::Min => highest::<T>(),
        ReduceOp::ArgMax | ReduceOp::ArgMin => unreachable!(),
    }
}

/// The lowest value of `T`, -inf for floats.
fn lowest<T: Num>() -> T {
    T::from(f64::NEG_INFINITY).unwrap_or_else(T::min_value)
}

fn highest<T: Num>() -> T {
    T::from(f64::INFINITY).unwrap_or_else(T::max_value)
}

/// Reduces one contiguous row with 8 independent accumulators.
fn reduce_row<T: Num>(op: ReduceOp, row: &[T]) -> T {
    let mut acc = [identity::<T>(op); 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = combine(op, acc[i], c[i]);
        }
    }
    let mut total = identity::<T>(op);
    for a in acc {
        total = combine(op, total, a);
    }
    tail.iter().fold(total, |t, &x| combine(op, t, x))
}

fn value_reduce<T: Num>(op: ReduceOp, x: &[T], outer: usize, k: usize, inner: usize) -> Vec<T> {
    let big = outer * k * inner >= PARALLEL_MIN;
    if inner == 1 {
        let rows = |o: usize| reduce_row(op, &x[o * k..(o + 1) * k]);
        return if big { (0..outer).into_par_iter().map(rows).collect() } else { (0..outer).map(rows).collect() };
    }
    let mut out = vec![identity::<T>(op); outer * inner];
    let block = |o: usize, acc: &mut [T]| {
        for kk in 0..k {
            let row = &x[(o * k + kk) * inner..(o * k + kk + 1) * inner];
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = combine(op, *a, v);
            }
        }
    };
    if big {
        out.par_chunks_mut(inner).enumerate().for_each(|(o, acc)| block(o, acc));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(o, acc)| block(o, acc));
    }
    out
}

/// Max or ArgMax along contiguous f32 rows (a row of logits) on the vector path: each row's
/// largest number by `vmath::max` (which skips NaN) and, apart, whether the row holds a NaN (a
/// fold with no early exit, which the compiler vectorises); then, for the argmax, the first index
/// holding that value. The answers of `reduce_row` and `arg_reduce`'s scan: NaN wins, first
/// NaN for the index, and ties keep the first index (-0 and +0 compare equal; which zero a max
/// returns is left to the vector instruction). Over a row of 151,936 logits on a Zen 4 EPYC,
/// 2 threads: max 21-39 µs and argmax 33-39 µs, against ~220 each.
fn max_rows_f32(op: ReduceOp, x: &[f32], outer: usize, k: usize) -> HostData {
    let isa = super::isa::active();
    let row = |o: usize| -> (f32, u32) {
        let row = &x[o * k..(o + 1) * k];
        if row.iter().fold(false, |nan, v| nan | v.is_nan()) {
            return (f32::NAN, row.iter().position(|v| v.is_nan()).unwrap_or(0) as u32);
        }
        let max = super::vmath::max(isa, row);
        let at = if op == ReduceOp::ArgMax { row.iter().position(|&v| v == max).unwrap_or(0) as u32 } else { 0 };
        (max, at)
    };
    let rows: Vec<(f32, u32)> = if outer * k >= PARALLEL_MIN {
        (0..outer).into_par_iter().map(row).collect()
    } else {
        (0..outer).map(row).collect()
    };
    match op {
        ReduceOp::ArgMax => HostData::U32(rows.into_iter().map(|(_, at)| at).collect()),
        _ => HostData::F32(rows.into_iter().map(|(max, _)| max).collect()),
    }
}

fn arg_reduce<T: Num>(op: ReduceOp, x: &[T], outer: usize, k: usize, inner: usize) -> Vec<u32> {
    // A strictly better value replaces the best, so ties keep the first index; a NaN wins
    // and stays, as in NumPy.
    let better = |cand: T, best: T| {
        let cand_nan = cand.to_f64().is_some_and(f64::is_nan);
        let best_nan = best.to_f64().is_some_and(f64::is_nan);
        !best_nan && (cand_nan || if op == ReduceOp::ArgMax { cand > best } else { cand < best })
    };
    let column = |o: usize, i: usize| {
        let mut best = x[o * k * inner + i];
        let mut at = 0u32;
        for kk in 1..k {
            let v = x[(o * k + kk) * inner + i];
            if better(v, best) {
                best = v;
                at = kk as u32;
            }
        }
        at
    };
    let n = outer * inner;
    if outer * k * inner >= PARALLEL_MIN {
        (0..n).into_par_iter().map(|p| column(p / inner, p % inner)).collect()
    } else {
        (0..n).map(|p| column(p / inner, p % inner)).collect()
    }
}
