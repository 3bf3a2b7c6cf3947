//! `llm pretrain [--family qwen3] [--steps N] [--small] [--out DIR] [--device cpu|gpu]`: trains the
//! tiny model from scratch on the shipped Austen corpus with the shipped tokenizer, showing a
//! progress bar, and writes a loadable checkpoint (config.json, model.safetensors in bf16,
//! tokenizer.json) with its loss curve (loss.csv, loss.png) and a summary (training.json).
//! The defaults reproduce the shipped model in `assets/tiny/`.

use std::path::Path;

use nn::ModuleExt;
use nn::optim::{AdamW, trainable};
use tensor::DType;

use crate::models::registry;
use crate::models::save::save_weights;
use crate::tiny::{TinySizes, TinyTraining, assets_dir, config_json, corpus_tokens, fresh_model};
use crate::tokenizer::Tokenizer;
use crate::train::{TokenData, pretrain};
use crate::{Error, Result};

pub struct PretrainArgs<'a> {
    pub family: &'a str,
    pub steps: usize,
    pub small: bool,
    pub out: &'a Path,
    pub device: Option<&'a str>,
    pub seed: u64,
}

pub fn run(args: PretrainArgs) -> Result<()> {
    let family = match registry::tiny_families().find(|a| a.id() == args.family) {
        Some(arch) => arch.family,
        None => {
            let ids: Vec<&str> = registry::tiny_families().map(|a| a.id()).collect();
            return Err(Error::input(format!("--family must be one of {}, got {:?}", ids.join(", "), args.family)));
        }
    };
    if args.steps == 0 {
        return Err(Error::input("--steps must be at least 1"));
    }
    let (device, line) = crate::device::pick(args.device)?;
    eprintln!("{line}");
    let assets = assets_dir();
    let tokenizer_path = assets.join(crate::tokenizer::TINY_TOKENIZER_FILE);
    let tokenizer = Tokenizer::from_file(&tokenizer_path)?;
    let tokens = corpus_tokens(&tokenizer, &assets.join("corpus"))?;
    let sizes = if args.small { TinySizes::small() } else { TinySizes::default() };
    let mut training = TinyTraining::with_steps(args.steps);
    training.options.seed = args.seed;
    let data = TokenData::split(tokens, training.validation_fraction)?;
    let (config, model) = fresh_model(family, &sizes, args.seed, &device)?;
    let params = trainable(model.named_parameters());
    let count: usize = params.iter().map(|(_, v)| v.elem_count()).sum();
    eprintln!(
        "training a {count}-parameter {} model on {} tokens ({} held out), {} updates of {}x{} tokens",
        family.name(),
        data.train.len(),
        data.validation.len(),
        args.steps,
        training.options.batch_size,
        training.options.seq_len
    );
    let mut optimizer =
        AdamW::with(params, training.options.schedule.peak, training.betas, 1e-8, training.weight_decay);
    let curve = pretrain(&model, &data, &training.options, &mut optimizer, &device)?;

    std::fs::create_dir_all(args.out).map_err(|e| Error::io(args.out, e))?;
    let config_text = serde_json::to_string_pretty(&config_json(family, &sizes)?).expect("JSON values serialise");
    let config_path = args.out.join("config.json");
    std::fs::write(&config_path, config_text + "\n").map_err(|e| Error::io(&config_path, e))?;
    save_weights(&model, &config, args.out, DType::BF16)?;
    tokenizer.save(args.out.join("tokenizer.json"))?;
    curve.write_csv(&args.out.join("loss.csv"))?;
    let title = format!("{} ({:.1}M parameters) learning Austen", family.name(), count as f64 / 1e6);
    curve.save_png(&args.out.join("loss.png"), &title)?;
    let summary = serde_json::json!({
        "family": family.name(),
        "parameters": count,
        "device": device.name(),
        "steps": args.steps,
        "batch_size": training.options.batch_size,
        "seq_len": training.options.seq_len,
        "peak_learning_rate": training.options.schedule.peak,
        "training_tokens_seen": curve.tokens,
        "epochs": curve.tokens as f64 / data.train.len() as f64,
        "seconds": curve.seconds,
        "final_train_loss_mean_of_last_10": curve.smoothed_train(10).last().map(|p| p.1),
        "final_validation_loss": curve.final_validation(),
        "seed": args.seed,
    });
    let summary_path = args.out.join("training.json");
    let text = serde_json::to_string_pretty(&summary).expect("JSON values serialise");
    std::fs::write(&summary_path, text + "\n").map_err(|e| Error::io(&summary_path, e))?;
    eprintln!(
        "held-out loss {:.3} after {:.0} s; saved to {}",
        curve.final_validation().unwrap_or(f32::NAN),
        curve.seconds,
        args.out.display()
    );
    Ok(())
}
