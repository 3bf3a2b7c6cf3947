//! `llm train --model DIR --data FILE --steps K --lr LR [--beta1 --beta2 --eps --weight-decay]
//! [--optimizer adamw|muon] [--device cpu|gpu] [--save DIR]`: full-batch training on the
//! `input_ids` of a safetensors file with mean next-token cross-entropy. Prints one JSON line per
//! step, `{"step": k, "loss": x}` (the loss before update k), and a last line after the final
//! update; `--save` writes a checkpoint `llm` (and transformers) can load.

use std::path::Path;

use nn::ModuleExt;
use nn::optim::{AdamW, Muon, MuonScaling, Optimizer};
use tensor::DType;

use crate::models::{LoadOptions, load, save};
use crate::weights::Checkpoint;
use crate::{Error, Result};

pub struct TrainArgs<'a> {
    pub model: &'a Path,
    pub data: &'a Path,
    pub steps: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub optimizer: &'a str,
    pub device: Option<&'a str>,
    pub save: Option<&'a Path>,
}

pub fn run(args: TrainArgs) -> Result<()> {
    if !(args.lr.is_finite() && args.lr > 0.0) {
        return Err(Error::input(format!("--lr must be a positive number, got {}", args.lr)));
    }
    for (name, b) in [("--beta1", args.beta1), ("--beta2", args.beta2)] {
        if !(0.0..1.0).contains(&b) {
            return Err(Error::input(format!("{name} must be in [0, 1), got {b}")));
        }
    }
    let (device, line) = crate::device::pick(args.device)?;
    eprintln!("{line}");
    let loaded = load(args.model, &LoadOptions { device: device.clone(), weight_dtype: Some(DType::F32) })?;
    let data = Checkpoint::open(args.data)?;
    let meta = data.meta("input_ids").ok_or_else(|| Error::format(args.data, "no tensor named input_ids"))?;
    if meta.shape.len() != 2 || meta.shape[1] < 2 || !meta.dtype.is_int() {
        return Err(Error::format(
            args.data,
            format!("input_ids must be integer ids [B, T] with T >= 2, got {} {:?}", meta.dtype, meta.shape),
        ));
    }
    let ids = data.load("input_ids", Some(DType::I64), &tensor::Device::cpu())?;
    super::logits::check_ids(
        &ids.to_vec::<i64>()?,
        loaded.model.vocab_size(),
        loaded.config.max_position_embeddings,
        meta.shape[1],
    )?;
    let ids = ids.to_dtype(DType::U32)?.to(&device)?;
    let params = loaded.model.named_parameters();
    let mut optimizer: Box<dyn Optimizer> = match args.optimizer {
        "adamw" => Box::new(AdamW::with(params, args.lr, (args.beta1, args.beta2), args.eps, args.weight_decay)),
        "muon" => Box::new(Muon::new(params, args.lr, args.weight_decay, MuonScaling::MatchAdamRms)),
        other => return Err(Error::input(format!("--optimizer must be adamw or muon, got {other:?}"))),
    };
    crate::train::train(&loaded.model, &ids, args.steps, optimizer.as_mut(), |step, loss| {
        println!("{}", serde_json::json!({ "step": step, "loss": loss }));
        Ok(())
    })?;
    if let Some(dir) = args.save {
        save::save_checkpoint(&loaded.model, &loaded.config, args.model, dir)?;
        eprintln!("saved to {}", dir.display());
    }
    Ok(())
}
