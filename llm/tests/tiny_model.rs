//! The shipped model (`assets/tiny/`): it loads with the default `llm generate`, and what it
//! writes is English of the corpus's kind. "Recognisably English" is checked by vocabulary:
//! at least 80% of the words of a sampled continuation must be words of the two novels. A
//! freshly initialised model of the same shape strings byte-level tokens together at random and
//! scores far lower (checked below, so the bar is shown to discriminate).

use std::collections::HashSet;
use std::process::Command;

use llm::generate::{StopAt, generate};
use llm::models::{LoadOptions, load};
use llm::sample::Sampling;
use llm::tiny::{TinySizes, fresh_model, shipped_model_dir};
use llm::tokenizer::Tokenizer;
use tensor::{DType, Device};

fn corpus_words() -> HashSet<String> {
    let dir = llm::tiny::assets_dir().join("corpus");
    let mut words = HashSet::new();
    for file in ["pride-and-prejudice.txt", "persuasion.txt"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("corpus file");
        words.extend(split_words(&text));
    }
    words
}

fn split_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
}

/// The share of the words of `text` that occur in the corpus.
fn known_share(text: &str, known: &HashSet<String>) -> f64 {
    let words = split_words(text);
    assert!(words.len() >= 20, "too few words to judge: {text:?}");
    words.iter().filter(|w| known.contains(*w)).count() as f64 / words.len() as f64
}

fn sample_text(model: &llm::models::CausalLm, tokenizer: &Tokenizer, seed: u64) -> llm::Result<String> {
    let mut prompt = vec![0u32];
    prompt.extend(tokenizer.encode("It was")?);
    let sampling = Sampling { temperature: 0.8, top_k: Some(40), top_p: None, seed };
    let ids = generate(model, &prompt, 120, sampling, &StopAt::default(), &Device::cpu(), |_| Ok(()))?;
    Ok(tokenizer.decode(&ids[1..])?)
}

#[test]
fn the_shipped_model_writes_corpus_english() -> llm::Result<()> {
    let dir = shipped_model_dir();
    let loaded = load(&dir, &LoadOptions { device: Device::cpu(), weight_dtype: Some(DType::F32) })?;
    let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))?;
    let known = corpus_words();
    let text = sample_text(&loaded.model, &tokenizer, 1)?;
    let trained = known_share(&text, &known);
    let (_, fresh) = fresh_model(llm::config::Family::Qwen3, &TinySizes::default(), 1, &Device::cpu())?;
    let untrained = known_share(&sample_text(&fresh, &tokenizer, 1)?, &known);
    eprintln!("trained: {:.0}% corpus words: {text:?}\nuntrained: {:.0}%", 100.0 * trained, 100.0 * untrained);
    assert!(trained >= 0.8, "only {:.0}% of the words are English of the corpus: {text:?}", 100.0 * trained);
    assert!(untrained < 0.6, "the bar does not discriminate: an untrained model scores {:.0}%", 100.0 * untrained);
    Ok(())
}

#[test]
fn llm_generate_uses_the_shipped_model_by_default() {
    let o = Command::new(env!("CARGO_BIN_EXE_llm"))
        .args(["generate", "--prompt", "Mr. Darcy", "--max-new-tokens", "24", "--device", "cpu"])
        .output()
        .expect("llm runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.starts_with("Mr. Darcy"), "the prompt is echoed first: {out:?}");
    assert!(out.len() > "Mr. Darcy".len() + 20, "and continued: {out:?}");
}
