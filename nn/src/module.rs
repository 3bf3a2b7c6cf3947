//! `Module`: a block with named parameters. Names are dotted paths that match Hugging Face
//! checkpoints (`model.layers.3.self_attn.q_proj.weight`), so loading a checkpoint is a walk
//! over `named_parameters()` with a lookup per name.

use autograd::Var;
use tensor::{DType, Device, Result};

use crate::PackedSlot;

/// A block of a model: it knows its parameters and their names.
pub trait Module {
    /// Calls `f` with every parameter, named `prefix.<its path>`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var));

    /// Calls `f` with the slot of every weight matrix that may be kept block-quantized (the
    /// weights of `Linear`s and `Embedding` tables), named as `visit` names that weight. Blocks
    /// that read a weight's values other than through `Linear::forward` leave it out.
    fn visit_packed(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &PackedSlot)) {}

    /// Switches between training and evaluation behaviour (statistics a router keeps, the
    /// logit maxima MuonClip needs). Most blocks behave the same in both.
    fn set_training(&self, _training: bool) {}

    /// Asks attention blocks to record each head's largest logit in every forward pass (what
    /// MuonClip's QK-Clip needs). Off by default: it costs a score matrix per layer.
    fn record_attention_logits(&self, _on: bool) {}

    /// QK-Clip (MuonClip): attention blocks rescale the query/key weights of heads whose largest
    /// logit in the last training-mode forward exceeded `tau`. Containers pass it on; other
    /// blocks ignore it.
    fn clip_qk(&self, _tau: f64) -> Result<()> {
        Ok(())
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

/// Conveniences every module gets.
pub trait ModuleExt: Module {
    /// `(name, parameter)` for every parameter, in visiting order.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        self.visit("", &mut |name, var| out.push((name.to_string(), var.clone())));
        out
    }

    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, v)| v).collect()
    }

    /// The number of scalar parameters, counting a parameter shared by two names once.
    fn num_parameters(&self) -> usize {
        let mut seen = std::collections::HashSet::new();
        self.parameters().iter().filter(|v| seen.insert(v.id())).map(|v| v.elem_count()).sum()
    }

    /// Moves every parameter to `device`, in place.
    fn to_device(&self, device: &Device) -> Result<()> {
        for p in unique(self.parameters()) {
            p.replace_value(p.value().to(device)?)?;
        }
        Ok(())
    }

    /// Converts every trainable float parameter to `dtype`, in place. Buffers that are not
    /// trained (DeepSeek-V3's router `e_score_correction_bias`, which the release keeps in f32
    /// because its small updates would vanish in bf16) keep their dtype.
    fn to_dtype(&self, dtype: DType) -> Result<()> {
        for p in unique(self.parameters()) {
            if p.dtype().is_float() && p.requires_grad() {
                p.replace_value(p.value().to_dtype(dtype)?)?;
            }
        }
        Ok(())
    }
}

impl<M: Module + ?Sized> ModuleExt for M {}

fn unique(vars: Vec<Var>) -> Vec<Var> {
    let mut seen = std::collections::HashSet::new();
    vars.into_iter().filter(|v| seen.insert(v.id())).collect()
}

impl<M: Module> Module for Vec<M> {
    /// A list of blocks named by index, as `model.layers.0`, `model.layers.1`, ...
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        for (i, m) in self.iter().enumerate() {
            m.visit(&join(prefix, &i.to_string()), f);
        }
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &PackedSlot)) {
        for (i, m) in self.iter().enumerate() {
            m.visit_packed(&join(prefix, &i.to_string()), f);
        }
    }
    fn set_training(&self, training: bool) {
        self.iter().for_each(|m| m.set_training(training));
    }
    fn record_attention_logits(&self, on: bool) {
        self.iter().for_each(|m| m.record_attention_logits(on));
    }
    fn clip_qk(&self, tau: f64) -> Result<()> {
        self.iter().try_for_each(|m| m.clip_qk(tau))
    }
}

impl<M: Module> Module for Option<M> {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        if let Some(m) = self {
            m.visit(prefix, f);
        }
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &PackedSlot)) {
        if let Some(m) = self {
            m.visit_packed(prefix, f);
        }
    }
    fn set_training(&self, training: bool) {
        if let Some(m) = self {
            m.set_training(training);
        }
    }
    fn record_attention_logits(&self, on: bool) {
        if let Some(m) = self {
            m.record_attention_logits(on);
        }
    }
    fn clip_qk(&self, tau: f64) -> Result<()> {
        self.as_ref().map_or(Ok(()), |m| m.clip_qk(tau))
    }
}
