//! Chat templates: how a model's conversation (system, user and assistant turns) becomes the one
//! text it was trained on. Hugging Face models ship the template as Jinja in
//! `tokenizer_config.json`'s `chat_template` (or a `chat_template.jinja` file); it is rendered
//! with minijinja, given `messages`, `add_generation_prompt`, `bos_token` and `eos_token`, as
//! `transformers`' `apply_chat_template` does (with Jinja's `trim_blocks` and `lstrip_blocks`).
//!
//! A model with no template (the project's own tiny model is one: it was trained on plain prose)
//! gets [`FALLBACK`]: each message as `role: content` on its own line, then `assistant:` to
//! prompt the answer, after the model's beginning-of-sequence token if it has one.
//!
//! End of turn: the answer ends at any id of `eos_token_id` in config.json or
//! generation_config.json, or at the template's `eos_token`.

use std::path::Path;

use serde_json::Value;

use crate::config::ModelConfig;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Describes the fallback used when a model has no chat template.
pub const FALLBACK: &str =
    "no chat_template in tokenizer_config.json: messages are rendered as `role: content` lines, then `assistant:`";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.to_string(), content: content.to_string() }
    }
}

/// The special tokens a model's files name, before the config fills the gaps.
struct SpecialTokens {
    bos: Option<String>,
    eos: Option<String>,
    /// End-of-turn ids beyond the config's EOS ids.
    end_of_turn: Vec<u32>,
}

/// A model's chat template and end-of-turn ids.
pub struct ChatTemplate {
    env: Option<minijinja::Environment<'static>>,
    bos_token: String,
    eos_token: String,
    bos_id: Option<u32>,
    /// Ids that end an answer.
    pub end_of_turn: Vec<u32>,
}

impl ChatTemplate {
    /// Reads the template and special tokens of the model in `dir`.
    pub fn load(dir: &Path, config: &ModelConfig, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
        let read_json = |name: &str| -> Result<Option<Value>> {
            let path = dir.join(name);
            if !path.is_file() {
                return Ok(None);
            }
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str(&text).map(Some).map_err(|e| Error::format(&path, format!("not valid JSON: {e}")))
        };
        let tok_config = read_json("tokenizer_config.json")?.unwrap_or(Value::Null);
        let jinja_file = dir.join("chat_template.jinja");
        let source = match template_source(&tok_config) {
            Some(s) => Some(s),
            None if jinja_file.is_file() => {
                Some(std::fs::read_to_string(&jinja_file).map_err(|e| Error::io(&jinja_file, e))?)
            }
            None => None,
        };
        let token_text = |key: &str| match &tok_config[key] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        let mut end_of_turn = Vec::new();
        if let Some(gen_config) = read_json("generation_config.json")? {
            match &gen_config["eos_token_id"] {
                Value::Number(n) => end_of_turn.extend(n.as_u64().map(|v| v as u32)),
                Value::Array(a) => end_of_turn.extend(a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32)),
                _ => {}
            }
        }
        let tokens = SpecialTokens { bos: token_text("bos_token"), eos: token_text("eos_token"), end_of_turn };
        ChatTemplate::assemble(source, &dir.join("tokenizer_config.json"), tokens, config, tokenizer)
    }

    /// Reads the template and special tokens a GGUF file carries: `tokenizer.chat_template`,
    /// `tokenizer.ggml.bos_token_id` / `eos_token_id`, and llama.cpp's end-of-turn id
    /// `tokenizer.ggml.eot_token_id` where the converter wrote one.
    pub fn from_gguf(file: &GgufFile, config: &ModelConfig, tokenizer: &Tokenizer) -> Result<ChatTemplate> {
        let id = |key: &str| file.get(key).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok());
        let name_of = |key: &str| id(key).and_then(|i| tokenizer.id_token(i));
        let source = file.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
        let mut end_of_turn: Vec<u32> =
            ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"].into_iter().filter_map(id).collect();
        end_of_turn.sort_unstable();
        let tokens = SpecialTokens {
            bos: name_of("tokenizer.ggml.bos_token_id"),
            eos: name_of("tokenizer.ggml.eos_token_id"),
            end_of_turn,
        };
        ChatTemplate::assemble(source, &file.path, tokens, config, tokenizer)
    }

    /// The template from its source (if any) and the special tokens a model's files name,
    /// completed from the config: BOS and EOS text default to the config's ids' tokens, and the
    /// end-of-turn ids are the config's EOS ids, those the files add, and the EOS token's id.
    fn assemble(
        source: Option<String>,
        origin: &Path,
        tokens: SpecialTokens,
        config: &ModelConfig,
        tokenizer: &Tokenizer,
    ) -> Result<ChatTemplate> {
        let name_of = |id: Option<u32>| id.and_then(|id| tokenizer.id_token(id));
        let bos_token = tokens.bos.or_else(|| name_of(config.bos_token_id)).unwrap_or_default();
        let eos_token = tokens.eos.or_else(|| name_of(config.eos_token_ids.first().copied())).unwrap_or_default();
        let mut end_of_turn = config.eos_token_ids.clone();
        end_of_turn.extend(tokens.end_of_turn);
        end_of_turn.extend(tokenizer.token_id(&eos_token));
        end_of_turn.sort_unstable();
        end_of_turn.dedup();
        let env = source.map(|s| environment(s, origin)).transpose()?;
        Ok(ChatTemplate { env, bos_token, eos_token, bos_id: config.bos_token_id, end_of_turn })
    }

    /// A template from Jinja source (tests, and models whose template comes from elsewhere).
    pub fn from_source(source: &str, bos_token: &str, eos_token: &str, end_of_turn: Vec<u32>) -> Result<ChatTemplate> {
        Ok(ChatTemplate {
            env: Some(environment(source.to_string(), Path::new("chat_template"))?),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            bos_id: None,
            end_of_turn,
        })
    }

    /// Whether the model has a template of its own (otherwise [`FALLBACK`] is used).
    pub fn has_template(&self) -> bool {
        self.env.is_some()
    }

    /// One line saying what renders conversations.
    pub fn describe(&self) -> String {
        if self.has_template() {
            format!("chat template: the model's own (end of turn: ids {:?})", self.end_of_turn)
        } else {
            format!("chat template: {FALLBACK} (end of turn: ids {:?})", self.end_of_turn)
        }
    }

    /// The conversation as text, ending with the prompt for the assistant's answer.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        match &self.env {
            Some(env) => {
                let template = env.get_template("chat").map_err(template_error)?;
                template
                    .render(minijinja::context! {
                        messages => messages,
                        add_generation_prompt => true,
                        bos_token => &self.bos_token,
                        eos_token => &self.eos_token,
                    })
                    .map_err(template_error)
            }
            None => {
                let mut text = String::new();
                for m in messages {
                    text.push_str(&format!("{}: {}\n", m.role, m.content));
                }
                text.push_str("assistant:");
                Ok(text)
            }
        }
    }

    /// The conversation as token ids. A template writes its own beginning-of-sequence text; the
    /// fallback starts with the model's BOS id when it has one.
    pub fn prompt_ids(&self, messages: &[Message], tokenizer: &Tokenizer) -> Result<Vec<u32>> {
        let text = self.render(messages)?;
        let mut ids: Vec<u32> = if self.has_template() { Vec::new() } else { self.bos_id.into_iter().collect() };
        ids.extend(tokenizer.encode(&text)?);
        Ok(ids)
    }
}

/// The Jinja source of the chat template of the model folder `dir`: `tokenizer_config.json`'s
/// `chat_template`, else a `chat_template.jinja` file; None when it has neither.
pub fn template_in_dir(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("tokenizer_config.json");
    if path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let config: Value =
            serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not valid JSON: {e}")))?;
        if let Some(source) = template_source(&config) {
            return Ok(Some(source));
        }
    }
    let jinja = dir.join("chat_template.jinja");
    if jinja.is_file() {
        return std::fs::read_to_string(&jinja).map(Some).map_err(|e| Error::io(&jinja, e));
    }
    Ok(None)
}

/// `chat_template` as a string, or the `default` of a list of named templates.
fn template_source(tok_config: &Value) -> Option<String> {
    match &tok_config["chat_template"] {
        Value::String(s) => Some(s.clone()),
        Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .or_else(|| list.first())
            .and_then(|t| t["template"].as_str())
            .map(str::to_string),
        _ => None,
    }
}

fn environment(source: String, path: &Path) -> Result<minijinja::Environment<'static>> {
    let mut env = minijinja::Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Templates call Python string methods (`.strip()`, `.startswith()`) as in Jinja2 under Python.
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |_format: String| -> String { String::new() });
    env.add_template_owned("chat", source)
        .map_err(|e| Error::format(path, format!("chat_template is not a template minijinja can read: {e}")))?;
    Ok(env)
}

fn template_error(e: minijinja::Error) -> Error {
    Error::input(format!("the chat template failed on these messages: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ChatML-style template of the shape Qwen's tokenizer_config.json ships.
    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'].strip() + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    #[test]
    fn renders_chatml_as_transformers_does() {
        let t = ChatTemplate::from_source(CHATML, "", "<|im_end|>", vec![]).unwrap();
        let text = t.render(&[Message::new("system", "Be brief."), Message::new("user", " Hi ")]).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn bos_token_blocks_and_raise_exception() {
        let src = "{{ bos_token }}{% for m in messages %}\n{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}\n[{{ m.role }}]{{ m.content }}{{ eos_token }}\n{% endfor %}";
        let t = ChatTemplate::from_source(src, "<s>", "</s>", vec![2]).unwrap();
        assert_eq!(t.render(&[Message::new("user", "a")]).unwrap(), "<s>[user]a</s>\n");
        let err = t.render(&[Message::new("tool", "x")]).unwrap_err().to_string();
        assert!(err.contains("no tools"), "{err}");
        assert!(ChatTemplate::from_source("{% for %}", "", "", vec![]).is_err());
    }
}
