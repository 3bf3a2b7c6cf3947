//! Optional wgpu features the kernels use when an adapter offers them, each with a fallback that
//! every adapter runs:
//! - `SUBGROUP`: reductions with `subgroupAdd` across a subgroup (a warp, a wavefront) instead of
//!   a tree of barriers through workgroup memory (the matrix-vector product);
//! - `SHADER_F16`: half-precision arithmetic in WGSL (`enable f16;`);
//! - `TIMESTAMP_QUERY`: GPU timestamps, so a profile can name the slowest kernels.
//!
//! Each is requested at device creation when the adapter has it, unless `LLM_GPU_DISABLE` names
//! it (`LLM_GPU_DISABLE=subgroups,shader-f16,timestamps`), which keeps a real GPU on the
//! fallbacks. Within a process, [`force_subgroups`] and [`force_shader_f16`] switch a kernel
//! family back to its fallback (tests run both paths on one adapter); a kernel's pipeline key
//! names the path, so both may be compiled side by side.

use std::sync::atomic::{AtomicU8, Ordering};

use tensor::{Error, Result};

/// The optional features a device was opened with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Optional {
    pub subgroups: bool,
    pub shader_f16: bool,
    pub timestamps: bool,
}

/// The names `LLM_GPU_DISABLE` accepts, with the feature each stands for.
const NAMES: [(&str, wgpu::Features); 3] = [
    ("subgroups", wgpu::Features::SUBGROUP),
    ("shader-f16", wgpu::Features::SHADER_F16),
    ("timestamps", wgpu::Features::TIMESTAMP_QUERY),
];

/// The features named by a `LLM_GPU_DISABLE` value (comma-separated), or an error naming the
/// word that is not one of them.
pub fn parse_disabled(value: &str) -> Result<wgpu::Features> {
    let mut off = wgpu::Features::empty();
    for word in value.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let word = word.to_ascii_lowercase();
        match NAMES.iter().find(|(name, _)| *name == word) {
            Some((_, f)) => off |= *f,
            None => {
                let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
                return Err(Error::device(
                    "gpu",
                    format!("LLM_GPU_DISABLE names {word:?}, which is not one of {}", known.join(", ")),
                ));
            }
        }
    }
    Ok(off)
}

/// What to request of an adapter offering `offered`: every optional feature it has, less those
/// `LLM_GPU_DISABLE` names.
pub fn to_request(offered: wgpu::Features) -> Result<(wgpu::Features, Optional)> {
    let disabled = match std::env::var("LLM_GPU_DISABLE") {
        Ok(v) => parse_disabled(&v)?,
        Err(_) => wgpu::Features::empty(),
    };
    let wanted = NAMES.iter().fold(wgpu::Features::empty(), |acc, (_, f)| acc | *f);
    let request = offered & wanted & !disabled;
    let optional = Optional {
        subgroups: request.contains(wgpu::Features::SUBGROUP),
        shader_f16: request.contains(wgpu::Features::SHADER_F16),
        timestamps: request.contains(wgpu::Features::TIMESTAMP_QUERY),
    };
    Ok((request, optional))
}

/// A process-wide override: 0 = as the device has it, 1 = forced off.
static SUBGROUPS_OFF: AtomicU8 = AtomicU8::new(0);
static SHADER_F16_OFF: AtomicU8 = AtomicU8::new(0);

/// `Some(false)` makes the kernels take their subgroup-free fallback from now on; `None` (or
/// `Some(true)`) uses subgroups where the device has them. Forcing on a device without them
/// changes nothing.
pub fn force_subgroups(on: Option<bool>) {
    SUBGROUPS_OFF.store(u8::from(on == Some(false)), Ordering::Relaxed);
}

/// As [`force_subgroups`], for half-precision arithmetic.
pub fn force_shader_f16(on: Option<bool>) {
    SHADER_F16_OFF.store(u8::from(on == Some(false)), Ordering::Relaxed);
}

impl Optional {
    /// Whether kernels launched now may use subgroup operations.
    pub fn use_subgroups(&self) -> bool {
        self.subgroups && SUBGROUPS_OFF.load(Ordering::Relaxed) == 0
    }

    /// Whether kernels launched now may use f16 arithmetic.
    pub fn use_shader_f16(&self) -> bool {
        self.shader_f16 && SHADER_F16_OFF.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_names_are_parsed_and_a_wrong_one_is_named() {
        assert_eq!(parse_disabled("").unwrap(), wgpu::Features::empty());
        assert_eq!(
            parse_disabled(" Subgroups, shader-f16 ").unwrap(),
            wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16
        );
        let err = parse_disabled("subgroups,f17").unwrap_err().to_string();
        assert!(err.contains("\"f17\"") && err.contains("shader-f16"), "{err}");
    }

    #[test]
    fn only_offered_features_are_requested() {
        let (request, optional) = to_request(wgpu::Features::SUBGROUP | wgpu::Features::DEPTH_CLIP_CONTROL).unwrap();
        if std::env::var_os("LLM_GPU_DISABLE").is_none() {
            assert_eq!(request, wgpu::Features::SUBGROUP);
            assert_eq!(optional, Optional { subgroups: true, shader_f16: false, timestamps: false });
        }
    }
}
