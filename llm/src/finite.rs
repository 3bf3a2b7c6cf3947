//! The opt-in NaN/inf check: with `LLM_CHECK_FINITE=1` in the environment (or
//! [`set_check_finite`]), every weight is checked as it loads and every layer's output as it
//! leaves the layer, so the first non-finite value is reported with the tensor or layer that
//! produced it rather than surfacing as NaN logits at the end. Off by default: it reads every
//! activation back to the host.
//!
//! Independently of the switch, converting a checkpoint's f32/f64 weights to f16 or bf16 on load
//! always checks for values beyond the narrower range (the cast would turn them into inf).

use std::sync::atomic::{AtomicU8, Ordering};

use tensor::{DType, HostData, Tensor};

/// 0: not decided yet (read the environment), 1: off, 2: on.
static STATE: AtomicU8 = AtomicU8::new(0);

/// Whether the check is on.
pub fn check_finite() -> bool {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var("LLM_CHECK_FINITE").is_ok_and(|v| !v.is_empty() && v != "0");
            STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
            on
        }
        s => s == 2,
    }
}

/// Turns the check on or off for this process (the `--check-finite` flag; tests).
pub fn set_check_finite(on: bool) {
    STATE.store(if on { 2 } else { 1 }, Ordering::Relaxed);
}

/// The first non-finite element of floating host data: its flat index and value.
pub fn first_non_finite(data: &HostData) -> Option<(usize, f64)> {
    fn find<T: Copy>(v: &[T], finite: impl Fn(T) -> bool, wide: impl Fn(T) -> f64) -> Option<(usize, f64)> {
        v.iter().position(|&x| !finite(x)).map(|i| (i, wide(v[i])))
    }
    match data {
        HostData::F32(v) => find(v, f32::is_finite, f64::from),
        HostData::F64(v) => find(v, f64::is_finite, |x| x),
        HostData::BF16(v) => find(v, |x| x.is_finite(), |x| x.to_f64()),
        HostData::F16(v) => find(v, |x| x.is_finite(), |x| x.to_f64()),
        HostData::U32(_) | HostData::I64(_) => None,
    }
}

/// The first non-finite element of a tensor (read back as f32, which holds every value of the
/// narrower float dtypes exactly; an f64 above f32's range shows as inf, which is what it would
/// become in the f32 arithmetic anyway).
pub fn first_non_finite_tensor(t: &Tensor) -> tensor::Result<Option<(usize, f64)>> {
    if !matches!(t.dtype(), DType::F32 | DType::F64 | DType::BF16 | DType::F16) {
        return Ok(None);
    }
    let v = t.to_dtype(DType::F32)?.to_vec::<f32>()?;
    Ok(v.iter().position(|x| !x.is_finite()).map(|i| (i, f64::from(v[i]))))
}

/// Fails with a message naming `what` when the check is on and `t` holds NaN or inf.
pub fn check_activation(t: &Tensor, what: impl FnOnce() -> String) -> tensor::Result<()> {
    if !check_finite() {
        return Ok(());
    }
    if let Some((i, x)) = first_non_finite_tensor(t)? {
        let dims = t.dims().to_vec();
        return Err(tensor::Error::backend(
            "check-finite",
            format!("{} produced {x} at flat index {i} of its {dims:?} output", what()),
        ));
    }
    Ok(())
}
