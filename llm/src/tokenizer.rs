//! Text to token ids and back, in the Hugging Face `tokenizer.json` format.
//!
//! [`Tokenizer`] is a thin wrapper over the `tokenizers` crate: the open model families
//! ship their tokenizers as `tokenizer.json`, so reading that format (rather than a format
//! of our own) is what lets the same code load a downloaded model's tokenizer and the one
//! this crate trains for its own small model. The wrapper adds what the rest of the crate
//! needs and the library leaves loose: errors that name the file and what was expected,
//! ids checked against the vocabulary, and an [`IncrementalDecoder`] for streaming
//! generation.
//!
//! [`train_byte_level_bpe`] trains a byte-level BPE tokenizer (the GPT-2 design, also that
//! of many of today's open models): text is first turned into UTF-8 bytes, each byte is a
//! base token, and merges are learnt on top. Any string therefore encodes with no unknown
//! token and decodes back to exactly the same string. [`train_tiny_tokenizer`] retrains
//! the tokenizer shipped in `assets/tiny/tokenizer.json` from the corpus in
//! `assets/corpus/`, and [`regenerate_tiny_tokenizer`] also writes it there.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, DecoderWrapper};

/// The end-of-text special token, used both to begin (BOS) and to end (EOS) a document,
/// as in GPT-2. In the shipped tiny tokenizer its id is [`TINY_ENDOFTEXT_ID`].
pub const ENDOFTEXT: &str = "<|endoftext|>";

/// The id of [`ENDOFTEXT`] in the shipped tiny tokenizer: special tokens are given the
/// lowest ids, before the 256 byte tokens.
pub const TINY_ENDOFTEXT_ID: u32 = 0;

/// Vocabulary size of the shipped tiny tokenizer, special token included.
///
/// The model it serves has a few million parameters and learns from about a megabyte of
/// text. Every vocabulary entry costs an embedding row (and an output row) and needs
/// enough occurrences in the corpus to be learnt. At 2048 entries the corpus is about 315
/// thousand tokens (3.6 bytes per token) and the median learnt token occurs about 60
/// times; 4096 entries would double the embedding to shorten the token stream by only an
/// eighth (4.2 bytes per token), with the median learnt token occurring 17 times.
pub const TINY_VOCAB_SIZE: usize = 2048;

/// The corpus files the tiny tokenizer is trained on, in `assets/corpus/`, in this order.
pub const TINY_CORPUS_FILES: [&str; 2] = ["pride-and-prejudice.txt", "persuasion.txt"];

/// Where the shipped tiny tokenizer lives, relative to the assets folder.
pub const TINY_TOKENIZER_FILE: &str = "tiny/tokenizer.json";

/// What went wrong while loading, saving, training or using a tokenizer.
#[derive(Debug)]
pub enum TokenizerError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done with it, e.g. "read tokenizer file".
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// A file was read but does not hold what was expected.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What it should have held.
        expected: &'static str,
        /// What was found wrong.
        message: String,
    },
    /// A token id that the vocabulary does not have.
    UnknownId {
        /// The id.
        id: u32,
        /// The vocabulary size, special tokens included.
        vocab_size: usize,
    },
    /// Training settings that cannot give a tokenizer.
    Settings(String),
    /// The `tokenizers` library failed while doing something.
    Library {
        /// What was being done, e.g. "encoding".
        during: &'static str,
        /// The library's message.
        message: String,
    },
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, action, source } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::Invalid { path, expected, message } => write!(f, "{} is not {expected}: {message}", path.display()),
            Self::UnknownId { id, vocab_size } => {
                write!(f, "token id {id} is not in the vocabulary ({vocab_size} tokens)")
            }
            Self::Settings(message) => write!(f, "invalid tokenizer settings: {message}"),
            Self::Library { during, message } => {
                write!(f, "tokenizer failed while {during}: {message}")
            }
        }
    }
}

impl std::error::Error for TokenizerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The result type of this module.
pub type Result<T> = std::result::Result<T, TokenizerError>;

fn library(during: &'static str) -> impl FnOnce(tokenizers::Error) -> TokenizerError {
    move |error| TokenizerError::Library { during, message: error.to_string() }
}

/// A tokenizer read from, or trained into, the Hugging Face `tokenizer.json` format.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Reads a `tokenizer.json` file. A missing, unreadable or malformed file is an error
    /// that names the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            action: "read tokenizer file",
            source,
        })?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|error| TokenizerError::Invalid {
            path: path.to_path_buf(),
            expected: "a tokenizer in the Hugging Face tokenizer.json format",
            message: error.to_string(),
        })?;
        Ok(Self { inner })
    }

    /// Wraps a tokenizer built with the `tokenizers` crate.
    pub fn from_hf(inner: tokenizers::Tokenizer) -> Self {
        Self { inner }
    }

    /// The wrapped `tokenizers` tokenizer, for what this wrapper does not cover.
    pub fn as_hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// Writes the tokenizer as pretty-printed `tokenizer.json` (pretty so that a retrained
    /// tokenizer diffs readably against the committed one).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let json = self.inner.to_string(true).map_err(library("serialising"))?;
        fs::write(path, json).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            action: "write tokenizer file",
            source,
        })
    }

    /// The tokenizer as pretty-printed `tokenizer.json` text, exactly as [`save`](Self::save)
    /// writes it.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(true).map_err(library("serialising"))
    }

    /// Token ids of `text`. No BOS or EOS is added: the caller decides where documents
    /// begin and end. A literal `<|endoftext|>` in the text becomes the special token.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(library("encoding"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included. Ids outside the vocabulary are an error
    /// (the library would skip them silently). Bytes that do not form valid UTF-8 (which a
    /// model can produce) become U+FFFD replacement characters.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        for &id in ids {
            self.check_id(id)?;
        }
        self.decode_unchecked(ids)
    }

    fn decode_unchecked(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(library("decoding"))
    }

    fn check_id(&self, id: u32) -> Result<()> {
        match self.inner.id_to_token(id) {
            Some(_) => Ok(()),
            None => Err(TokenizerError::UnknownId { id, vocab_size: self.vocab_size() }),
        }
    }

    /// The number of tokens, special tokens included: the size of a model's embedding.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token given as it is spelt in the vocabulary (byte-level tokens spell a
    /// leading space as `Ġ`), or of a special token such as [`ENDOFTEXT`].
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The vocabulary spelling of a token id.
    pub fn id_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// A decoder for ids that arrive one at a time, as in generation.
    pub fn incremental_decoder(&self) -> IncrementalDecoder<'_> {
        IncrementalDecoder { tokenizer: self, ids: Vec::new(), context: 0 }
    }
}

/// Turns token ids given one at a time into text, as soon as the text is complete.
///
/// One token need not hold whole characters: a byte-level tokenizer may split a
/// multi-byte UTF-8 character (an accented letter, a CJK character, an emoji) over
/// several tokens, and decoding such a token alone gives replacement characters. The
/// decoder therefore decodes a short window of ids as a whole and hands out text only once
/// it does not end in an unfinished character, and only the part not handed out before.
/// The window starts with the ids of the last piece handed out, as context: decoders that
/// treat the first token of a text specially (SentencePiece drops its leading space) then
/// see the new ids in the middle of a text, as a one-shot decode does.
///
/// The pieces returned by [`push`](Self::push) and [`finish`](Self::finish), joined, are
/// exactly [`Tokenizer::decode`] of all the ids.
#[derive(Debug)]
pub struct IncrementalDecoder<'a> {
    tokenizer: &'a Tokenizer,
    /// The window: the ids of the last piece handed out, then the ids held back.
    ids: Vec<u32>,
    /// How many ids at the start of the window are context, already handed out.
    context: usize,
}

impl IncrementalDecoder<'_> {
    /// Adds one id and returns the text it completes: empty while a character is still
    /// unfinished, possibly several characters at once after that.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.tokenizer.check_id(id)?;
        self.ids.push(id);
        let done = self.tokenizer.decode_unchecked(&self.ids[..self.context])?;
        let all = self.tokenizer.decode_unchecked(&self.ids)?;
        if all.ends_with(char::REPLACEMENT_CHARACTER) {
            // Unfinished character, or a real U+FFFD: either way wait for the next id.
            return Ok(String::new());
        }
        // The context's text should be a prefix of the window's; if a decoder rewrites
        // it, wait, and let `finish` sort it out.
        let new = match all.strip_prefix(done.as_str()) {
            Some(new) if !new.is_empty() => new.to_string(),
            _ => return Ok(String::new()),
        };
        self.ids.drain(..self.context);
        self.context = self.ids.len();
        Ok(new)
    }

    /// Ends the stream and returns the text still held back: an unfinished character at
    /// the end becomes U+FFFD, as in a one-shot decode. The decoder is then empty.
    pub fn finish(&mut self) -> Result<String> {
        let done = self.tokenizer.decode_unchecked(&self.ids[..self.context])?;
        let all = self.tokenizer.decode_unchecked(&self.ids)?;
        self.ids.clear();
        self.context = 0;
        // What follows the longest common prefix of the two texts.
        let common = all
            .char_indices()
            .zip(done.chars())
            .find(|((_, a), b)| a != b)
            .map_or_else(|| done.len().min(all.len()), |((at, _), _)| at);
        Ok(all[common..].to_string())
    }
}

/// Reads a training text file as UTF-8, naming the file on failure.
fn read_text(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|source| TokenizerError::Io {
        path: path.to_path_buf(),
        action: "read training text",
        source,
    })?;
    String::from_utf8(bytes).map_err(|error| TokenizerError::Invalid {
        path: path.to_path_buf(),
        expected: "UTF-8 text",
        message: error.to_string(),
    })
}

/// Trains a byte-level BPE tokenizer on the text of `text_files`.
///
/// The design is GPT-2's: no normaliser (so decoding gives back exactly the input), the
/// GPT-2 pre-tokenizer regex (words with their leading space, numbers, punctuation runs
/// and whitespace are split apart before merging, so merges never cross a word
/// boundary), all 256 bytes in the base vocabulary whatever the text holds (so no text
/// is ever unknown), and a byte-level decoder. `special_tokens` take the lowest ids, in
/// the order given; then come the 256 bytes (in the order of their GPT-2 spelling), then
/// the merges. `vocab_size` counts all of them.
///
/// Training is deterministic: the same files and settings give the same `tokenizer.json`,
/// byte for byte. Merges are learnt from pairs seen at least twice, so a very small text
/// can give a smaller vocabulary than asked for.
pub fn train_byte_level_bpe(text_files: &[&Path], vocab_size: usize, special_tokens: &[&str]) -> Result<Tokenizer> {
    let alphabet: HashSet<char> = ByteLevel::alphabet().into_iter().collect();
    let minimum = alphabet.len() + special_tokens.len();
    if vocab_size < minimum {
        return Err(TokenizerError::Settings(format!(
            "vocab_size {vocab_size} is below the {minimum} base tokens \
             ({} bytes and {} special tokens)",
            alphabet.len(),
            special_tokens.len()
        )));
    }
    if text_files.is_empty() {
        return Err(TokenizerError::Settings("no training text files given".to_string()));
    }
    let texts = text_files.iter().map(|path| read_text(path)).collect::<Result<Vec<_>>>()?;

    let special: Vec<AddedToken> =
        special_tokens.iter().map(|token| AddedToken::from(token.to_string(), true)).collect();
    let trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(special)
        .initial_alphabet(alphabet)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);

    let mut inner = tokenizers::Tokenizer::new(BPE::default());
    // Pre-tokenizer: GPT-2 regex split, bytes spelt as printable characters, and no space
    // added before the first word (so a text's first word keeps its own spelling).
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));
    // The post-processor only adjusts offsets; it adds no tokens.
    inner.with_post_processor(Some(ByteLevel::new(false, false, true)));

    // One sequence a line, newline kept, as the library's own file trainer reads text.
    let lines = texts.iter().flat_map(|text| text.split_inclusive('\n'));
    inner.train(&mut trainer, lines).map_err(library("training"))?;
    Ok(Tokenizer { inner })
}

/// The crate's `assets` folder (see [`crate::assets`]).
pub fn default_assets_dir() -> PathBuf {
    crate::assets::assets_dir()
}

/// The paths of the tiny corpus files under an assets folder, in training order.
pub fn tiny_corpus_files(assets_dir: &Path) -> Vec<PathBuf> {
    TINY_CORPUS_FILES.iter().map(|name| assets_dir.join("corpus").join(name)).collect()
}

/// Trains the tiny tokenizer from the corpus under `assets_dir` with the shipped settings:
/// byte-level BPE, [`TINY_VOCAB_SIZE`] tokens, [`ENDOFTEXT`] as the only special token
/// (id [`TINY_ENDOFTEXT_ID`]).
pub fn train_tiny_tokenizer(assets_dir: &Path) -> Result<Tokenizer> {
    let files = tiny_corpus_files(assets_dir);
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    train_byte_level_bpe(&paths, TINY_VOCAB_SIZE, &[ENDOFTEXT])
}

/// Retrains the tiny tokenizer from the corpus under `assets_dir` and writes it to
/// `assets_dir/tiny/tokenizer.json`, returning it.
pub fn regenerate_tiny_tokenizer(assets_dir: &Path) -> Result<Tokenizer> {
    let tokenizer = train_tiny_tokenizer(assets_dir)?;
    tokenizer.save(assets_dir.join(TINY_TOKENIZER_FILE))?;
    Ok(tokenizer)
}
