//! The llm crate's error: every failure names the file, tensor, field or flag involved and what
//! was expected, so the `llm` command can print it as one line.

use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// A file that could not be read or written.
    Io { path: PathBuf, source: std::io::Error },
    /// A file whose contents are not what they should be (a broken safetensors header, a
    /// missing or wrongly shaped tensor, JSON of the wrong shape).
    Format { path: PathBuf, msg: String },
    /// A model config that cannot describe a model we build.
    Config(String),
    /// A tensor op failed.
    Tensor(tensor::Error),
    /// Tokenizer loading or use.
    Tokenizer(String),
    /// Bad arguments from the user (ids outside the vocabulary, a prompt longer than the context).
    Input(String),
    /// Values that stopped being numbers (NaN or infinite logits).
    Numeric(String),
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.to_path_buf(), source }
    }
    pub fn format(path: &Path, msg: impl Into<String>) -> Error {
        Error::Format { path: path.to_path_buf(), msg: msg.into() }
    }
    pub fn input(msg: impl Into<String>) -> Error {
        Error::Input(msg.into())
    }
    pub fn numeric(msg: impl Into<String>) -> Error {
        Error::Numeric(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Format { path, msg } => write!(f, "{}: {msg}", path.display()),
            Error::Config(msg) => write!(f, "config: {msg}"),
            Error::Tensor(e) => write!(f, "{e}"),
            Error::Tokenizer(msg) => write!(f, "tokenizer: {msg}"),
            Error::Input(msg) | Error::Numeric(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Tensor(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tensor::Error> for Error {
    fn from(e: tensor::Error) -> Error {
        Error::Tensor(e)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<crate::tokenizer::TokenizerError> for Error {
    fn from(e: crate::tokenizer::TokenizerError) -> Error {
        Error::Tokenizer(e.to_string())
    }
}
