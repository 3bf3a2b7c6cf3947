//! The `llm` command's subcommands, one file each. Every failure reaches `main` as an
//! `llm::Error` and is printed as one line.

pub mod chat;
pub mod choices;
pub mod generate;
pub mod global;
pub mod inspect;
pub mod logits;
pub mod pretrain;
pub mod quantize;
pub mod serve;
pub mod tour;
pub mod train;
