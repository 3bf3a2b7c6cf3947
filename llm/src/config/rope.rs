//! RoPE settings in both spellings Hugging Face configs use:
//! - transformers 5: `rope_parameters` = `{rope_type, rope_theta, factor, ...}`, or for Gemma 3 a
//!   dict keyed by layer type (`full_attention`, `sliding_attention`);
//! - most Hub checkpoints: `rope_theta` + `rope_scaling` (`type` or `rope_type`), plus Gemma 3's
//!   `rope_local_base_freq` for its sliding layers.

use nn::rope::RopeScaling;

use super::fields::{Fields, quoted};
use crate::{Error, Result};

/// One RoPE schedule: base and scaling.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeSettings {
    /// `rope_theta`.
    pub theta: f64,
    pub scaling: RopeScaling,
}

/// The schedules of a model: one for global layers, and for Gemma 3 another for sliding layers.
#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    pub global: RopeSettings,
    /// Gemma 3's local layers (`rope_local_base_freq`, no scaling).
    pub local: Option<RopeSettings>,
}

/// Reads the scaling part of a rope dict (`rope_scaling` or `rope_parameters`).
fn scaling(f: &Fields, max_position_embeddings: usize) -> Result<RopeScaling> {
    let kind = match f.str_opt("rope_type")? {
        Some(k) => k,
        None => f.str_opt("type")?.unwrap_or("default"),
    };
    let factor = || -> Result<f64> {
        let v = f
            .f64_opt("factor")?
            .ok_or_else(|| Error::Config(format!("{}: rope scaling {kind:?} needs a factor", f.source)))?;
        if v <= 0.0 {
            return Err(Error::Config(format!("{}: rope factor must be positive, got {v}", f.source)));
        }
        Ok(v)
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: factor()? },
        "llama3" => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: f.f64_or("low_freq_factor", 1.0)?,
            high_freq_factor: f.f64_or("high_freq_factor", 4.0)?,
            original_max_position_embeddings: f.f64_or("original_max_position_embeddings", 8192.0)?,
        },
        "yarn" => RopeScaling::Yarn {
            factor: factor()?,
            beta_fast: f.f64_or("beta_fast", 32.0)?,
            beta_slow: f.f64_or("beta_slow", 1.0)?,
            mscale: f.f64_or("mscale", 1.0)?,
            mscale_all_dim: f.f64_or("mscale_all_dim", 0.0)?,
            original_max_position_embeddings: f
                .f64_or("original_max_position_embeddings", max_position_embeddings as f64)?,
            truncate: f.bool_or("truncate", true)?,
        },
        other => {
            return Err(Error::Config(format!(
                "{}: rope type {} is not supported (expected default, linear, llama3 or yarn)",
                f.source,
                quoted(other)
            )));
        }
    })
}

/// Reads a model's RoPE settings. `default_theta` and `default_local_theta` are the family's
/// class defaults, used when the config leaves the base out.
pub fn read(
    f: &Fields,
    max_position_embeddings: usize,
    default_theta: f64,
    default_local_theta: Option<f64>,
) -> Result<RopeConfig> {
    if let Some(params) = f.object("rope_parameters")? {
        // Gemma 3 in transformers 5: one dict per layer type.
        if let Some(full) = params.object("full_attention")? {
            let global = RopeSettings {
                theta: full.f64_or("rope_theta", default_theta)?,
                scaling: scaling(&full, max_position_embeddings)?,
            };
            let local = match params.object("sliding_attention")? {
                Some(s) => Some(RopeSettings {
                    theta: s.f64_or("rope_theta", default_local_theta.unwrap_or(default_theta))?,
                    scaling: scaling(&s, max_position_embeddings)?,
                }),
                None => default_local_theta.map(|theta| RopeSettings { theta, scaling: RopeScaling::None }),
            };
            return Ok(RopeConfig { global, local });
        }
        let global = RopeSettings {
            theta: params.f64_or("rope_theta", f.f64_or("rope_theta", default_theta)?)?,
            scaling: scaling(&params, max_position_embeddings)?,
        };
        let local = default_local_theta
            .map(|d| -> Result<RopeSettings> {
                Ok(RopeSettings { theta: f.f64_or("rope_local_base_freq", d)?, scaling: RopeScaling::None })
            })
            .transpose()?;
        return Ok(RopeConfig { global, local });
    }
    let theta = f.f64_or("rope_theta", default_theta)?;
    let scaling = match f.object("rope_scaling")? {
        Some(s) => scaling(&s, max_position_embeddings)?,
        None => RopeScaling::None,
    };
    let local = default_local_theta
        .map(|d| -> Result<RopeSettings> {
            Ok(RopeSettings { theta: f.f64_or("rope_local_base_freq", d)?, scaling: RopeScaling::None })
        })
        .transpose()?;
    Ok(RopeConfig { global: RopeSettings { theta, scaling }, local })
}
