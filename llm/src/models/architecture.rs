//! What an architecture is to this library: one [`Architecture`] value, defined in the
//! architecture's own file (`models/<arch>.rs`) and listed in [`super::registry`]. Reading a
//! config, building the model, loading and saving its checkpoints, GGUF, the tiny model and the
//! tables of `llm tour` all go through that value instead of keeping their own lists.

use nn::Init;
use serde_json::{Map, Value};

use super::decoder::CausalLm;
use super::recipe::{self, Recipe};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::{Family, ModelConfig};
use crate::gguf::config::Metadata;
use crate::gguf::{GgufFile, GgufWriter};
use crate::tiny::TinySizes;

/// A Hugging Face `model_type` an architecture answers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelType {
    pub name: &'static str,
    /// The text decoder's fields sit in a nested `text_config` (the multimodal releases:
    /// `gemma3`, `mistral3`, `llama4`).
    pub nested: bool,
}

impl ModelType {
    /// A `model_type` whose decoder fields are at the top level.
    pub const fn text(name: &'static str) -> ModelType {
        ModelType { name, nested: false }
    }

    /// A `model_type` whose decoder fields sit in `text_config`.
    pub const fn nested(name: &'static str) -> ModelType {
        ModelType { name, nested: true }
    }
}

/// The defaults of an architecture's transformers `*Config` class, used where a config leaves a
/// shared field out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassDefaults {
    pub vocab_size: usize,
    pub rope_theta: f64,
    /// The RoPE base of sliding-window layers, for the families that rotate them with their own
    /// (Gemma 3's `rope_local_base_freq`).
    pub local_rope_theta: Option<f64>,
    pub rms_norm_eps: f64,
    pub tie_word_embeddings: bool,
    /// `None`: `hidden_size / num_attention_heads`.
    pub head_dim: Option<usize>,
    pub max_position_embeddings: usize,
    pub hidden_act: &'static str,
    pub attention_bias: bool,
    /// `None`: the config must give `intermediate_size`.
    pub intermediate_size: Option<usize>,
}

impl ClassDefaults {
    /// What most classes share; each architecture writes its own as changes to it.
    pub const COMMON: ClassDefaults = ClassDefaults {
        vocab_size: 32_000,
        rope_theta: 10_000.0,
        local_rope_theta: None,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: false,
        head_dim: None,
        max_position_embeddings: 4096,
        hidden_act: "silu",
        attention_bias: false,
        intermediate_size: None,
    };
}

/// An architecture as llama.cpp's converter writes it to GGUF (`convert_hf_to_gguf.py` and
/// `gguf-py`'s `tensor_mapping.py`).
#[derive(Clone, Copy, Debug)]
pub struct Gguf {
    /// `general.architecture`, also the prefix of its metadata keys (`qwen3.block_count`).
    pub arch: &'static str,
    /// Per-layer tensors named otherwise than the Llama-style table of `gguf::names`, looked up
    /// first: (Hugging Face suffix after `model.layers.N.`, GGUF suffix after `blk.N.`).
    pub layer_names: &'static [(&'static str, &'static str)],
    /// llama.cpp rotates consecutive pairs for it (its "normal" RoPE) where the checkpoint
    /// rotates the two halves of each head, so the converter reorders the rows of each head of
    /// q and k (`LlamaModel.permute`), which the reader undoes.
    pub permuted_qk: bool,
    /// llama.cpp skips RoPE on every `n`-th layer of it (a fixed step, with no metadata key).
    pub nope_step: Option<usize>,
    /// llama.cpp makes every `n`-th layer global and the others sliding-window layers when the
    /// file has a window (`hparams.set_swa_pattern(n)`: a fixed pattern, with no metadata key).
    pub swa_pattern: Option<usize>,
    /// Adds the architecture's own metadata keys to the Hugging Face config rebuilt from a file.
    pub read: fn(&Metadata, &mut Map<String, Value>) -> Result<()>,
    /// Writes the architecture's own metadata keys for a config, or refuses (an error saying
    /// why) a config llama.cpp would compute otherwise.
    pub write: fn(&ModelConfig, &mut GgufWriter) -> Result<()>,
    /// The tensors the converter writes for a parameter it does not store as one renamed copy
    /// (DeepSeek's `kv_b_proj`, split into `attn_k_b` and `attn_v_b`): given the parameter's
    /// name, row-major shape and values, `Some` list of (GGUF name, row-major shape, values);
    /// `None` for the parameters stored whole.
    pub split: fn(&ModelConfig, &str, &[usize], &[f32]) -> Split,
    /// The reverse of `split` for the loader: `Some` (the parameter's values, the file's tensors
    /// they came from) for a parameter the file stores split; `None` to read it as one tensor.
    pub join: fn(&ModelConfig, &str, &GgufFile) -> Joined,
}

/// One tensor a parameter is split into: (GGUF name, row-major shape, values).
pub type SplitPart = (String, Vec<usize>, Vec<f32>);

/// What a [`Gguf::split`] gives: the tensors of a split parameter, or None.
pub type Split = Result<Option<Vec<SplitPart>>>;

/// What a [`Gguf::join`] gives: a split parameter's values and the tensors they came from, or
/// None.
pub type Joined = Result<Option<(Vec<f32>, Vec<String>)>>;

/// A [`Gguf::split`] for architectures whose parameters are each one tensor.
pub fn no_split(_: &ModelConfig, _: &str, _: &[usize], _: &[f32]) -> Split {
    Ok(None)
}

/// A [`Gguf::join`] for architectures whose parameters are each one tensor.
pub fn no_join(_: &ModelConfig, _: &str, _: &GgufFile) -> Joined {
    Ok(None)
}

impl Gguf {
    /// An architecture whose tensors all take the Llama-style names, rotated as stored, with no
    /// keys of its own.
    pub const fn named(arch: &'static str) -> Gguf {
        Gguf {
            arch,
            layer_names: &[],
            permuted_qk: false,
            nope_step: None,
            swa_pattern: None,
            read: crate::gguf::config::no_keys,
            write: crate::gguf::no_keys,
            split: no_split,
            join: no_join,
        }
    }

    /// [`Gguf::named`] with q and k rows reordered for llama.cpp's pairwise RoPE.
    pub const fn pairwise_rope(arch: &'static str) -> Gguf {
        Gguf { permuted_qk: true, ..Gguf::named(arch) }
    }
}

/// What an architecture is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names {
    /// The name tables show (`Gemma 3`).
    pub shown: &'static str,
    /// The short name `--family` uses (`gemma3`), the file's name.
    pub id: &'static str,
    /// The transformers class of the decoder (`Gemma3ForCausalLM`).
    pub class: &'static str,
}

/// One architecture: everything that makes it itself, in one value.
pub struct Architecture {
    pub family: Family,
    pub names: Names,
    /// The `model_type`s it answers to, the text decoder's first.
    pub model_types: &'static [ModelType],
    pub defaults: ClassDefaults,
    /// Reads the fields only this architecture has onto a config whose shared fields are read:
    /// its windows, NoPE layers, layer pattern (unless the config gives `layer_types`), experts.
    pub read: fn(&Fields, &mut ModelConfig) -> Result<()>,
    /// The wiring of released checkpoints.
    pub recipe: Recipe,
    /// The recipe a config asks for, where a config can change it (OLMo 2's switches); most
    /// architectures use [`as_released`].
    pub configure: fn(&ModelConfig, Recipe) -> Recipe,
    /// Its tiny reference checkpoint: the folder under `llm/tests/data/hf-tiny/` holding a small
    /// random model of it with the logits transformers computed for it.
    pub fixture: &'static str,
    /// How llama.cpp names it in GGUF files, where this library reads and writes them.
    pub gguf: Option<Gguf>,
    /// The fields a tiny model of this family adds to the shared ones ([`crate::tiny`]), for
    /// the dense families that can be the project's own model.
    pub tiny: Option<fn(&TinySizes) -> Value>,
}

impl Architecture {
    /// The name tables show.
    pub fn name(&self) -> &'static str {
        self.names.shown
    }

    /// The short name (`gemma3`).
    pub fn id(&self) -> &'static str {
        self.names.id
    }

    /// The `model_type` of the text decoder (`gemma3_text` for `gemma3`).
    pub fn text_model_type(&self) -> &'static str {
        self.model_types.iter().find(|t| !t.nested).map_or(self.model_types[0].name, |t| t.name)
    }

    /// Builds the model `config` describes with parameters from `init`.
    pub fn build(&self, config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
        recipe::build(config, &(self.configure)(config, self.recipe), init)
    }
}

/// The recipe unchanged by the config.
pub fn as_released(_: &ModelConfig, recipe: Recipe) -> Recipe {
    recipe
}

/// A `read` for architectures with no fields of their own.
pub fn no_fields(_: &Fields, _: &mut ModelConfig) -> Result<()> {
    Ok(())
}
