//! Every notebook in `examples/` has its page in `docs/notebooks/` (written by
//! `tools/notebooks.sh`), with a transcript and the pictures it names, and the README's table
//! links it: a reader can see every result without compiling.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// The targets of Markdown image links `![..](target)` in `text`.
fn images(text: &str) -> Vec<&str> {
    text.match_indices("![")
        .filter_map(|(i, _)| {
            let rest = &text[i..];
            let open = rest.find("](")? + 2;
            let close = rest[open..].find(')')?;
            Some(&rest[open..open + close])
        })
        .collect()
}

#[test]
fn every_example_has_a_page_with_its_output_and_pictures() {
    let pages = root().join("docs/notebooks");
    let names = examples();
    assert!(names.len() >= 10, "found only {names:?}");
    let mut missing = Vec::new();
    for name in &names {
        let page = pages.join(format!("{name}.md"));
        let Ok(text) = fs::read_to_string(&page) else {
            missing.push(format!("{name}: no {}", page.display()));
            continue;
        };
        if !text.contains("## Output") || !text.contains("```text") {
            missing.push(format!("{name}: the page has no transcript"));
        }
        if text.contains("The run ended with exit status") {
            missing.push(format!("{name}: the recorded run failed"));
        }
        for image in images(&text) {
            if !Path::new(&pages.join(image)).is_file() {
                missing.push(format!("{name}: picture {image} is missing"));
            }
        }
    }
    assert!(missing.is_empty(), "run tools/notebooks.sh NAME for:\n{}", missing.join("\n"));
}

#[test]
fn the_readme_links_every_page() {
    let readme = fs::read_to_string(root().join("README.md")).expect("README.md");
    let unlinked: Vec<String> =
        examples().into_iter().filter(|n| !readme.contains(&format!("(docs/notebooks/{n}.md)"))).collect();
    assert!(unlinked.is_empty(), "the README's table does not link {unlinked:?}");
}

#[test]
fn image_links_are_found() {
    assert_eq!(images("a ![x](p/x.png) b ![y](y.png)"), vec!["p/x.png", "y.png"]);
}
