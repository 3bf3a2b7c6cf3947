//! Pages of `docs/` that the code generates: they must say what the code computes now.
//! `LLM_UPDATE_DOCS=1 cargo test -p llm --test docs` rewrites them.

use std::path::PathBuf;

#[test]
fn architectures_page_is_generated_from_the_shipped_configs() -> llm::Result<()> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/ARCHITECTURES.md");
    let want = llm::cli::tour::architectures_markdown()?;
    if std::env::var("LLM_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &want).map_err(|e| llm::Error::io(&path, e))?;
    }
    let have = std::fs::read_to_string(&path).map_err(|e| llm::Error::io(&path, e))?;
    assert!(have == want, "docs/ARCHITECTURES.md is out of date: run LLM_UPDATE_DOCS=1 cargo test -p llm --test docs");
    Ok(())
}
