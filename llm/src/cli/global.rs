//! The flags every `llm` command shares: how many threads the CPU kernels use, and in which
//! dtype a model's weights are kept.

use tensor::DType;

use crate::{Error, Result};

/// `--dtype`: the dtype of a model's matmul weights and its embedding table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightDtype {
    /// As the checkpoint stores them: a bf16 release stays bf16 (half the memory and half the
    /// bytes read per decoded token of an f32 copy).
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
}

impl WeightDtype {
    /// The load option: `None` keeps each weight as stored.
    pub fn load_dtype(self) -> Option<DType> {
        match self {
            WeightDtype::Auto => None,
            WeightDtype::F32 => Some(DType::F32),
            WeightDtype::Bf16 => Some(DType::BF16),
            WeightDtype::F16 => Some(DType::F16),
        }
    }

    /// For the commands that need f32 weights: training (f32 optimizer updates in place) and the
    /// tour's comparison with the reference's f32 outputs. Asking them for half precision is an
    /// error, not a silent widening.
    pub fn f32_only(self, command: &str) -> Result<Option<DType>> {
        match self {
            WeightDtype::Auto | WeightDtype::F32 => Ok(Some(DType::F32)),
            other => Err(Error::input(format!(
                "--dtype {}: `llm {command}` runs with f32 weights (give --dtype f32 or leave it out)",
                other.name()
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::Auto => "auto",
            WeightDtype::F32 => "f32",
            WeightDtype::Bf16 => "bf16",
            WeightDtype::F16 => "f16",
        }
    }
}

/// `--kv-dtype`: the dtype the KV cache keeps keys and values in while generating or serving.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KvDtype {
    /// As attention computes them.
    #[default]
    F32,
    /// Half the memory and half the bytes attention reads per token, for 2^-11 relative
    /// rounding of each key and value (what llama.cpp keeps by default). Both devices read the
    /// cache as stored while decoding and widen each element as they load it; the CPU widens a
    /// prefill's keys and values once per call.
    F16,
    /// As f16 with 2^-8 rounding and f32's range.
    Bf16,
}

impl KvDtype {
    /// What [`crate::models::CausalLm::kv_dtype`] takes.
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::F32 => "f32",
            KvDtype::F16 => "f16",
            KvDtype::Bf16 => "bf16",
        }
    }

    pub fn cache_dtype(self) -> Option<DType> {
        match self {
            KvDtype::F32 => None,
            KvDtype::F16 => Some(DType::F16),
            KvDtype::Bf16 => Some(DType::BF16),
        }
    }

    /// Bytes per cached element.
    pub fn bytes(self) -> usize {
        match self {
            KvDtype::F32 => 4,
            KvDtype::F16 | KvDtype::Bf16 => 2,
        }
    }
}

/// `--quantize`: a safetensors checkpoint's matrices quantized at load and kept as blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantizeChoice {
    #[value(name = "q8_0")]
    Q8_0,
    #[value(name = "q4_0")]
    Q4_0,
}

impl QuantizeChoice {
    pub fn ggml(self) -> tensor::quant::GgmlType {
        match self {
            QuantizeChoice::Q8_0 => tensor::quant::GgmlType::Q8_0,
            QuantizeChoice::Q4_0 => tensor::quant::GgmlType::Q4_0,
        }
    }
}

/// Loads the model at `path` with `options` for inference, its matrices quantized as they are
/// read when `--quantize` is given (a GGUF file is quantized as it is stored already, so asking
/// again is an error rather than a silent no-op). On a CPU with AVX512_BF16, bf16 matrices are
/// packed into the bf16 GEMMs' panels (`models::pack::pack_bf16_panels`).
pub fn load_model(
    path: &std::path::Path,
    options: &crate::models::LoadOptions,
    quantize: Option<QuantizeChoice>,
) -> Result<crate::models::Loaded> {
    let loaded = match quantize {
        Some(choice) => crate::models::load_quantized(path, options, choice.ggml())?,
        None => crate::models::load(path, options)?,
    };
    if options.device.is_cpu() {
        crate::models::pack::pack_bf16_panels(&loaded.model)?;
    }
    Ok(loaded)
}

/// `--threads N`: the size of the thread pool the CPU kernels run on (rayon's global pool, which
/// the gemm crate shares). Without it, every core. Must run before any kernel does.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else { return Ok(()) };
    if n == 0 {
        return Err(Error::input("--threads must be at least 1"));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::input(format!("--threads {n}: the thread pool could not be set up: {e}")))
}

/// Frees what a prompt's prefill left: the CPU ops' kept buffers beyond a decoding step's
/// ([`tensor::cpu::shrink_pool`]) and the heap's free pages ([`crate::heap::return_freed`]).
/// Called once a prompt's prefill is done, when its activations are freed.
pub fn release_freed_memory() {
    // The CPU ops' pool keeps a prefill's activations for the next layer; the prefill is over.
    tensor::cpu::shrink_pool();
    crate::heap::return_freed();
}

/// `LLM_CPU_KERNELS`, which forces the CPU kernels' instruction-set path, and the kernels'
/// on/off switches (`LLM_CPU_BF16_GEMM`, `LLM_CPU_AMX`, `LLM_CPU_PREFETCH`, `LLM_CPU_PROFILE`):
/// a value that names no path or is no switch is an error here, before any kernel runs (the
/// kernels themselves can only warn and ignore it).
pub fn check_cpu_kernels_env() -> Result<()> {
    match std::env::var("LLM_CPU_KERNELS") {
        Ok(value) if !value.trim().is_empty() && tensor::cpu::isa::Isa::parse(&value).is_none() => {
            Err(Error::input(format!(
                "LLM_CPU_KERNELS={value:?} names no kernel path (expected scalar, avx2 or avx512, or leave it unset)"
            )))
        }
        _ => Ok(()),
    }?;
    // The switches of the CPU kernels, which they read once and can only ignore when wrong.
    for name in tensor::cpu::isa::SWITCHES {
        if let Err(value) = tensor::cpu::isa::switch(name) {
            return Err(Error::input(format!(
                "{name}={value:?} is not a switch (expected 0/off or 1/on, or leave it unset)"
            )));
        }
    }
    Ok(())
}

/// The number of threads the CPU kernels run on.
pub fn threads() -> usize {
    rayon::current_num_threads()
}
