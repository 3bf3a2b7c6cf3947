//! `llm chat [--model DIR] [--device cpu|gpu] [--max-tokens N] [--temperature T] [--seed S]`: a
//! conversation in the terminal. Each line read is a user turn; the conversation so far is
//! rendered with the model's chat template (the same code as `llm serve`) and the answer streams
//! until an end-of-turn token. An empty line or end of input ends the chat.

use std::io::{BufRead, Write};
use std::path::Path;

use crate::chat_template::Message;
use crate::generate::{StopAt, generate};
use crate::sample::Sampling;
use crate::{Error, Result};

pub struct ChatArgs<'a> {
    pub model: &'a Path,
    pub device: Option<&'a str>,
    /// `--dtype` (`None`: the weights as the checkpoint stores them).
    pub weight_dtype: Option<tensor::DType>,
    /// `--kv-dtype`.
    pub kv_dtype: super::global::KvDtype,
    /// `--quantize`.
    pub quantize: Option<super::global::QuantizeChoice>,
    pub max_tokens: usize,
    pub sampling: Sampling,
    pub system: Option<&'a str>,
}

pub fn run(args: ChatArgs) -> Result<()> {
    args.sampling.validate()?;
    let loaded = super::serve::load_for_chat(args.model, args.device, args.weight_dtype, args.kv_dtype, args.quantize)?;
    let ctx = loaded.model.config.max_position_embeddings;
    let stop = StopAt { eos: loaded.template.end_of_turn.clone() };
    let mut messages: Vec<Message> = args.system.map(|s| Message::new("system", s)).into_iter().collect();
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let write_err = |e: std::io::Error| Error::input(format!("stdout: {e}"));
    eprintln!("(an empty line ends the chat)");
    let mut seed = args.sampling.seed;
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| Error::input(format!("stdin: {e}")))?;
        if line.trim().is_empty() {
            break;
        }
        messages.push(Message::new("user", line.trim_end()));
        let prompt = loaded.template.prompt_ids(&messages, &loaded.tokenizer)?;
        if prompt.len() >= ctx {
            return Err(Error::input(format!(
                "the conversation ({} tokens) has filled the context of {ctx}",
                prompt.len()
            )));
        }
        let budget = args.max_tokens.min(ctx - prompt.len());
        let mut decoder = loaded.tokenizer.incremental_decoder();
        let mut answer = String::new();
        let sampling = Sampling { seed, ..args.sampling };
        seed = seed.wrapping_add(1);
        let mut first = true;
        generate(&loaded.model.model, &prompt, budget, sampling, &stop, &loaded.device, |token| {
            if std::mem::take(&mut first) && loaded.device.is_cpu() {
                // The prefill is done: its activations are free (see release_freed_memory).
                super::global::release_freed_memory();
            }
            if stop.eos.contains(&token) {
                return Ok(());
            }
            let piece = decoder.push(token)?;
            answer.push_str(&piece);
            write!(out, "{piece}").and_then(|_| out.flush()).map_err(write_err)
        })?;
        let rest = decoder.finish()?;
        answer.push_str(&rest);
        writeln!(out, "{rest}").map_err(write_err)?;
        messages.push(Message::new("assistant", answer.trim()));
    }
    Ok(())
}
