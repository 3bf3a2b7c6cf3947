//! Run-time choice of the instruction set our own CPU kernels use (matrix-vector products,
//! exp/SiLU/GELU, softmax, RMSNorm). One binary runs everywhere: the widest set the CPU has is
//! detected once (`is_x86_feature_detected!`), and each kernel dispatches on [`Isa`].
//!
//! A path can be forced, to compare paths or to exercise the narrower ones on a wide machine:
//! the environment variable `LLM_CPU_KERNELS=scalar|avx2|avx512` (read once, at the first
//! kernel call), or [`force`] from code. Forcing a set the CPU lacks falls back to the widest it
//! has, so a forced run never executes an illegal instruction. Matrix-matrix products go to the
//! `gemm` crate, which picks its own microkernels (AVX-512 with its `x86-v4` feature, else
//! AVX2+FMA, else scalar) and is not affected.
//!
//! One exception, and its own switch: f32 x bf16 matrix-matrix products (prefill with bf16
//! weights) use our `vdpbf16ps` GEMM (`gemm_bf16`) when the active path is `avx512` and the CPU
//! has AVX512_BF16; see [`bf16_gemm`]. `LLM_CPU_BF16_GEMM=0` (or `off`) turns it off, so they
//! widen the weights to f32 for the `gemm` crate as on every narrower path; [`force_bf16_gemm`]
//! does the same from code.
//!
//! Where the CPU also has AMX-BF16 (and Linux grants its tile state), that GEMM runs on AMX
//! tiles (`gemm_bf16_amx`): same math, several times the rate. `LLM_CPU_AMX=0` (or `off`)
//! keeps it on `vdpbf16ps`, and [`force_amx`] does the same from code; see [`amx`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set path of the CPU kernels, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, whatever the target's baseline is (SSE2 on x86-64).
    Scalar,
    /// 256-bit AVX2 with FMA and F16C (x86-64-v3).
    Avx2,
    /// 512-bit AVX-512 F/BW/VL/DQ (x86-64-v4).
    Avx512,
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The short name printed by the CLI and accepted by `LLM_CPU_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    pub fn parse(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        self <= features().widest
    }

    /// The path itself when available, else the widest one the CPU has.
    pub fn or_available(self) -> Isa {
        if self.available() { self } else { features().widest }
    }
}

/// `dispatch!(isa, scalar, avx2, avx512)` evaluates the expression of the path `isa` names, or
/// of the widest the CPU has when it lacks that one ([`Isa::or_available`]). It is the one place
/// where a kernel module's `#[target_feature]` calls are made `unsafe`, with the reason they are
/// sound; off x86-64 only the scalar expression is compiled.
macro_rules! dispatch {
    ($isa:expr, $scalar:expr, $avx2:expr, $avx512:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            match $isa.or_available() {
                // SAFETY: `or_available` only returns paths whose features the CPU reported.
                $crate::cpu::isa::Isa::Avx512 => unsafe { $avx512 },
                $crate::cpu::isa::Isa::Avx2 => unsafe { $avx2 },
                $crate::cpu::isa::Isa::Scalar => $scalar,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = $isa;
            $scalar
        }
    }};
}
pub(crate) use dispatch;

/// What the CPU offers, detected once.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// The widest path our kernels can take here.
    pub widest: Isa,
    /// AVX512_BF16 (`vdpbf16ps`, bf16 dot products).
    pub avx512_bf16: bool,
    /// AVX512_VNNI (int8 dot products, for the quantized formats).
    pub avx512_vnni: bool,
    /// AVX-VNNI, the 256-bit int8 dot products of AVX2-era cores.
    pub avx_vnni: bool,
    /// AVX512_VBMI (`vpermi2b`, byte lookups in 128-entry tables: FP8 codes to bf16).
    pub avx512_vbmi: bool,
}

pub fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma") && has!("f16c");
    let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq");
    Features {
        widest: if avx512 {
            Isa::Avx512
        } else if avx2 {
            Isa::Avx2
        } else {
            Isa::Scalar
        },
        avx512_bf16: avx512 && has!("avx512bf16"),
        avx512_vnni: avx512 && has!("avx512vnni"),
        avx_vnni: avx2 && has!("avxvnni"),
        avx512_vbmi: avx512 && has!("avx512vbmi"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Features {
    Features { widest: Isa::Scalar, avx512_bf16: false, avx512_vnni: false, avx_vnni: false, avx512_vbmi: false }
}

/// No override: 0. Otherwise 1 + the forced path's index in `Isa::ALL`.
static FORCED: AtomicU8 = AtomicU8::new(0);

/// The path from `LLM_CPU_KERNELS`, read once; an unknown value is reported once on stderr and
/// ignored (a kernel call has no error path back to the user).
fn from_env() -> Option<Isa> {
    static ENV: OnceLock<Option<Isa>> = OnceLock::new();
    *ENV.get_or_init(|| {
        let value = std::env::var("LLM_CPU_KERNELS").ok()?;
        let isa = Isa::parse(&value);
        if isa.is_none() && !value.trim().is_empty() {
            eprintln!("warning: LLM_CPU_KERNELS={value:?} is not one of scalar, avx2, avx512; ignored");
        }
        isa
    })
}

/// Forces every kernel onto `isa` (clamped to what the CPU has), or back to automatic choice
/// with `None`. Takes precedence over `LLM_CPU_KERNELS`. Process-wide: tests that compare paths
/// should call the kernels with an explicit [`Isa`] instead, as the kernel tests do.
pub fn force(isa: Option<Isa>) {
    let code = isa.map_or(0, |isa| 1 + Isa::ALL.iter().position(|&i| i == isa).unwrap_or(0) as u8);
    FORCED.store(code, Ordering::Relaxed);
}

/// The path the kernels take now: the forced one, else `LLM_CPU_KERNELS`, else the widest.
#[inline]
pub fn active() -> Isa {
    let code = FORCED.load(Ordering::Relaxed);
    let chosen = if code > 0 { Some(Isa::ALL[(code - 1) as usize]) } else { from_env() };
    chosen.map_or(features().widest, Isa::or_available)
}

/// The `force_bf16_gemm` override: 0 none, 1 off, 2 on.
static BF16_GEMM: AtomicU8 = AtomicU8::new(0);

/// The on/off switches of the CPU kernels in the environment, each read once by the kernel
/// that it steers: [`bf16_gemm`], [`amx`], [`stream_prefetch`], and `profile::on` (the step
/// timings). A command line checks them up front with [`switch`], where a wrong value can
/// still become an error for the user.
pub const SWITCHES: [&str; 4] = ["LLM_CPU_BF16_GEMM", "LLM_CPU_AMX", "LLM_CPU_PREFETCH", "LLM_CPU_PROFILE"];

/// An on/off switch's value: `0`/`off`/`false`/`no` is `Some(false)`, `1`/`on`/`true`/`yes`
/// `Some(true)` (any case, spaces around ignored), empty `None`; anything else is an error.
fn parse_switch(value: &str) -> Result<Option<bool>, ()> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "0" | "off" | "false" | "no" => Ok(Some(false)),
        "1" | "on" | "true" | "yes" => Ok(Some(true)),
        _ => Err(()),
    }
}

/// The switch `name` as the environment sets it now: `Ok(None)` when unset or empty, `Err`
/// with the raw value when it is not a switch (see [`parse_switch`]).
pub fn switch(name: &str) -> Result<Option<bool>, String> {
    match std::env::var(name) {
        Ok(value) => parse_switch(&value).map_err(|()| value),
        Err(_) => Ok(None),
    }
}

/// [`switch`] for a kernel, which has no error path back to the user: a value that is not a
/// switch is reported on stderr and left unset.
pub(crate) fn switch_or_warn(name: &str) -> Option<bool> {
    switch(name).unwrap_or_else(|value| {
        eprintln!("warning: {name}={value:?} is not a switch (0/off or 1/on); ignored");
        None
    })
}

/// `LLM_CPU_BF16_GEMM`, read once: off turns the bf16 GEMM off; unset leaves it on where the
/// CPU allows.
fn bf16_gemm_from_env() -> bool {
    static ENV: OnceLock<bool> = OnceLock::new();
    *ENV.get_or_init(|| switch_or_warn("LLM_CPU_BF16_GEMM").unwrap_or(true))
}

/// Turns the `vdpbf16ps` GEMM for f32 x bf16 products off (`Some(false)`), on where the CPU
/// allows (`Some(true)`), or back to `LLM_CPU_BF16_GEMM` (`None`). Process-wide, like [`force`].
pub fn force_bf16_gemm(on: Option<bool>) {
    BF16_GEMM.store(on.map_or(0, |on| 1 + on as u8), Ordering::Relaxed);
}

/// Whether f32 x bf16 matrix-matrix products take the `vdpbf16ps` GEMM now: the CPU has
/// AVX512_BF16, the active path is `avx512` (a forced scalar/avx2 path keeps the widening GEMM,
/// so the narrower paths stay testable), and the switch is not off. Its activations are rounded
/// to bf16 first, so results differ from the widening path by about 2^-8 relative per term.
#[inline]
pub fn bf16_gemm() -> bool {
    let on = match BF16_GEMM.load(Ordering::Relaxed) {
        0 => bf16_gemm_from_env(),
        code => code == 2,
    };
    on && features().avx512_bf16 && active() == Isa::Avx512
}

/// The `force_amx` override: 0 none, 1 off, 2 on.
static AMX: AtomicU8 = AtomicU8::new(0);

/// `LLM_CPU_AMX`, read once: off keeps the bf16 GEMM off AMX; unset lets it use AMX.
fn amx_from_env() -> bool {
    static ENV: OnceLock<bool> = OnceLock::new();
    *ENV.get_or_init(|| switch_or_warn("LLM_CPU_AMX").unwrap_or(true))
}

/// Keeps the bf16 GEMM off AMX (`Some(false)`), lets it use AMX where the CPU and OS allow
/// (`Some(true)`), or goes back to `LLM_CPU_AMX` (`None`). Process-wide, like [`force`].
pub fn force_amx(on: Option<bool>) {
    AMX.store(on.map_or(0, |on| 1 + on as u8), Ordering::Relaxed);
}

/// Whether the bf16 GEMM runs on AMX tiles now: [`bf16_gemm`] is on, the CPU has AMX-TILE and
/// AMX-BF16 and Linux granted the tile state (`gemm_bf16_amx::available`), and the switch is
/// not off. The results are those of the `vdpbf16ps` kernel up to the order of f32 additions.
#[inline]
pub fn amx() -> bool {
    let on = match AMX.load(Ordering::Relaxed) {
        0 => amx_from_env(),
        code => code == 2,
    };
    on && bf16_gemm() && super::gemm_bf16_amx::available()
}

/// `LLM_CPU_PREFETCH`, read once: on or off; unset leaves it on ([`stream_prefetch`]).
fn prefetch_from_env() -> Option<bool> {
    static ENV: OnceLock<Option<bool>> = OnceLock::new();
    *ENV.get_or_init(|| switch_or_warn("LLM_CPU_PREFETCH"))
}

/// Whether the matrix-vector kernels of decoding (`matvec_bf16::rows`, the f32/f16 rows of
/// `matmul::matvec_f32`, the AVX-512 VNNI kernels of Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/MXFP4 groups and
/// of k-quant rows) prefetch 4 KiB ahead in their weight stream. Each thread reads its rows
/// of a Linear's weight one after another, one sequential stream, and the question is whether
/// the hardware prefetchers alone keep enough of it in flight:
/// - on an Emerald Rapids Xeon they did not: over 600 MB of bf16 weights (past its 300 MiB L3),
///   2 threads, 15.4 GB/s without, 22.7 with the prefetch (into L2; into L1 20.4, and 2 or 8
///   KiB ahead the same as 4) in alternating runs; `llm generate` decode, alternating, bf16
///   12.1 -> 15.5 tok/s, q8_0 20.1 -> 28.7, q4_0 28.2 -> 40.5, q4_k_m 19.8 -> 27.8 (medians
///   of 4-5);
/// - on a Zen 4 EPYC (2 threads, 2026-12-07) it is level or ahead: `llm generate` decode at
///   the Qwen3-0.6B shape, three alternating pairs, f32 11.4-13.7 against 10.6-11.7 tok/s, bf16
///   22.6-24.5 against 22.2-22.9, q8_0 and q4_0 within the noise; at the 1.7B shape bf16
///   8.3-10.0 against 8.3-8.9, f32 level. Where the compute per byte grows (8 activation rows
///   against bf16 panels, a server's batch), it matters most: 31-35 against 38-51 ms for
///   600 MB of weights. (An earlier session found one row at a time without prefetch the
///   fastest order there, but never measured a prefetch on that order.)
///
/// Attention's decoding kernels over a KV cache (`cache_rows`: the keys' dot products and the
/// values' sums) prefetch the same ~4 KiB ahead in each head's rows: a head's keys and values
/// are short streams (135 KB each for 528 positions of Qwen3-0.6B's f16 cache), and each new
/// one starts cold. 28 layers' caches at 528 positions, one decoding step's attention per
/// layer (Zen 4 EPYC, 2 threads, AVX-512, alternating builds): 73.6-78.5 µs a layer against
/// 81.8-88.3 (three rounds); 1 thread 142 against 149-151. The AVX2 kernels, forced on the same
/// machine, were level (compute-bound there).
///
/// So: on, and `LLM_CPU_PREFETCH=0` turns it off.
#[inline]
pub fn stream_prefetch() -> bool {
    prefetch_from_env().unwrap_or(true)
}

/// A short description of the active path for a `--stats` line or a log, e.g. `avx512+bf16`.
pub fn active_name() -> String {
    let f = features();
    let isa = active();
    let mut name = isa.name().to_string();
    if isa == Isa::Avx512 && f.avx512_bf16 {
        name.push_str(if bf16_gemm() { "+bf16" } else { "+bf16(gemm off)" });
        if amx() {
            name.push_str("+amx");
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_rejected() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse9"), None);
    }

    #[test]
    fn scalar_is_always_available_and_unavailable_paths_clamp() {
        assert!(Isa::Scalar.available());
        let widest = features().widest;
        for isa in Isa::ALL {
            assert!(isa.or_available() <= widest);
            assert_eq!(isa.available(), isa <= widest);
        }
    }

    #[test]
    fn switches_take_on_and_off_words_and_reject_the_rest() {
        for on in ["1", "on", " TRUE ", "yes"] {
            assert_eq!(parse_switch(on), Ok(Some(true)), "{on:?}");
        }
        for off in ["0", "Off", "false", "no\n"] {
            assert_eq!(parse_switch(off), Ok(Some(false)), "{off:?}");
        }
        assert_eq!(parse_switch(" "), Ok(None));
        for bad in ["2", "enable", "of"] {
            assert_eq!(parse_switch(bad), Err(()), "{bad:?}");
        }
    }
}
