//! The `llm` command. Its subcommands arrive with the llm issue.

fn main() {
    eprintln!("llm: not built yet");
    std::process::exit(1);
}
