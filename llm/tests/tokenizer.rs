//! The shipped tiny tokenizer and the `llm::tokenizer` wrapper.
//!
//! To regenerate `assets/tiny/tokenizer.json` from the corpus:
//! `cargo test -p llm --test tokenizer -- --ignored regenerate_tiny_tokenizer_file`.

use std::fs;
use std::path::{Path, PathBuf};

use llm::tokenizer::{
    ENDOFTEXT, TINY_ENDOFTEXT_ID, TINY_TOKENIZER_FILE, TINY_VOCAB_SIZE, Tokenizer, TokenizerError, default_assets_dir,
    regenerate_tiny_tokenizer, tiny_corpus_files, train_byte_level_bpe, train_tiny_tokenizer,
};

fn shipped_path() -> PathBuf {
    default_assets_dir().join(TINY_TOKENIZER_FILE)
}

fn shipped() -> Tokenizer {
    let path = shipped_path();
    match Tokenizer::from_file(&path) {
        Ok(tokenizer) => tokenizer,
        Err(error) => panic!("the shipped tokenizer does not load: {error}"),
    }
}

fn corpus_text() -> String {
    tiny_corpus_files(&default_assets_dir())
        .iter()
        .map(|path| match fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => panic!("cannot read corpus file {}: {error}", path.display()),
        })
        .collect()
}

/// A scratch folder for this test, emptied first.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("llm-tokenizer-test-{}", std::process::id())).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch folder");
    dir
}

const SAMPLES: &[&str] = &[
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "Plain ASCII with numbers 1813, 3.14159 and 1,000,000.",
    "Punctuation: \"quoted\" 'single' -- dashes; (parens) [brackets] {braces} <angles> ~`!@#$%^&*_+=|\\/?",
    "  leading and trailing spaces, \ttabs,\r\nCRLF, and\n\n\nblank lines  ",
    "Accents: café, naïve, résumé, Ærøskøbing, Łódź, São Paulo, ﬁ ligature, e\u{301} combining.",
    "CJK: 我能吞下玻璃而不伤身体。日本語のテキスト。한국어 문장.",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ and a lone 🦀.",
    "Mixed: Ελληνικά, русский, עברית, العربية, हिन्दी, and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math.",
    "Control characters \u{0} \u{7} \u{1b}[0m and U+FFFD \u{FFFD} itself.",
    "",
];

#[test]
fn shipped_tokenizer_loads_with_expected_settings() {
    let tokenizer = shipped();
    assert_eq!(tokenizer.vocab_size(), TINY_VOCAB_SIZE);
    assert_eq!(tokenizer.token_id(ENDOFTEXT), Some(TINY_ENDOFTEXT_ID));
    assert_eq!(tokenizer.id_token(TINY_ENDOFTEXT_ID).as_deref(), Some(ENDOFTEXT));
    // Byte-level: every one of the 256 bytes has a token (GPT-2 spells a space `Ġ`,
    // a newline `Ċ`).
    for spelling in ["Ġ", "Ċ", "a", "!", "Ā", "ÿ"] {
        assert!(tokenizer.token_id(spelling).is_some(), "byte token {spelling:?} is missing");
    }
    // Common words of the corpus are single tokens.
    for word in ["Ġthe", "Ġand", "ĠElizabeth", "ĠAnne"] {
        assert!(tokenizer.token_id(word).is_some(), "{word:?} is not a token");
    }
    let json = fs::read_to_string(shipped_path()).expect("read shipped tokenizer");
    assert!(json.len() < 400_000, "tokenizer.json is {} bytes", json.len());
}

#[test]
fn round_trip_is_exact() {
    let tokenizer = shipped();
    for text in SAMPLES {
        let ids = tokenizer.encode(text).expect("encode");
        assert!(ids.iter().all(|&id| (id as usize) < TINY_VOCAB_SIZE), "id out of range for {text:?}");
        let back = tokenizer.decode(&ids).expect("decode");
        assert_eq!(&back, text, "round trip of {text:?} via {ids:?}");
    }
}

#[test]
fn endoftext_marks_documents() {
    let tokenizer = shipped();
    let ids = tokenizer.encode("<|endoftext|>Chapter 1<|endoftext|>").expect("encode");
    assert_eq!(ids.first(), Some(&TINY_ENDOFTEXT_ID));
    assert_eq!(ids.last(), Some(&TINY_ENDOFTEXT_ID));
    assert_eq!(ids.iter().filter(|&&id| id == TINY_ENDOFTEXT_ID).count(), 2);
    assert_eq!(tokenizer.decode(&ids).expect("decode"), "<|endoftext|>Chapter 1<|endoftext|>");
    // Encoding adds no BOS or EOS by itself.
    let plain = tokenizer.encode("Chapter 1").expect("encode");
    assert!(!plain.contains(&TINY_ENDOFTEXT_ID));
}

fn stream(tokenizer: &Tokenizer, ids: &[u32]) -> (String, Vec<String>) {
    let mut decoder = tokenizer.incremental_decoder();
    let mut pieces = Vec::new();
    for &id in ids {
        pieces.push(decoder.push(id).expect("push"));
    }
    pieces.push(decoder.finish().expect("finish"));
    (pieces.concat(), pieces)
}

#[test]
fn incremental_decoding_matches_one_shot_decoding() {
    let tokenizer = shipped();
    let text = SAMPLES.concat();
    let ids = tokenizer.encode(&text).expect("encode");

    // The stream really does split characters: some single tokens decode to an
    // unfinished character on their own.
    let split = ids
        .iter()
        .filter(|&&id| tokenizer.decode(&[id]).expect("decode").contains(char::REPLACEMENT_CHARACTER))
        .count();
    assert!(split > 10, "only {split} tokens hold partial characters");

    let (joined, pieces) = stream(&tokenizer, &ids);
    assert_eq!(joined, tokenizer.decode(&ids).expect("decode"));
    assert_eq!(joined, text);
    // No piece ever holds half a character (the text has one real U+FFFD, which the
    // decoder holds back until the next token and then hands out whole).
    let replacements: usize = pieces.iter().map(|piece| piece.matches(char::REPLACEMENT_CHARACTER).count()).sum();
    assert_eq!(replacements, 1);
    // Text comes out as soon as it is complete: ASCII tokens give their text at once.
    let ascii = tokenizer.encode("the end").expect("encode");
    let (_, pieces) = stream(&tokenizer, &ascii);
    assert!(pieces[..ascii.len()].iter().all(|piece| !piece.is_empty()));
    assert_eq!(pieces.last().map(String::as_str), Some(""));
}

#[test]
fn incremental_decoding_of_broken_utf8_matches_one_shot_decoding() {
    let tokenizer = shipped();
    // The tokens of "é" are its two bytes; the first alone, followed by more text, is
    // invalid UTF-8, as a model can produce.
    let e_acute = tokenizer.encode("é").expect("encode");
    assert_eq!(e_acute.len(), 2);
    let a = tokenizer.encode("a").expect("encode");
    let cases: Vec<Vec<u32>> = vec![
        [&e_acute[..1], &a[..]].concat(),
        [&a[..], &e_acute[..1]].concat(),
        [&e_acute[..1], &e_acute[..1], &e_acute[..]].concat(),
        [&e_acute[1..], &a[..], &e_acute[..]].concat(),
    ];
    for ids in cases {
        let (joined, _) = stream(&tokenizer, &ids);
        assert_eq!(joined, tokenizer.decode(&ids).expect("decode"), "{ids:?}");
    }
}

#[test]
fn incremental_decoding_of_the_corpus_opening() {
    let tokenizer = shipped();
    let text: String = corpus_text().chars().take(5_000).collect();
    let ids = tokenizer.encode(&text).expect("encode");
    let (joined, _) = stream(&tokenizer, &ids);
    assert_eq!(joined, text);
}

#[test]
fn unknown_ids_are_errors() {
    let tokenizer = shipped();
    let bad = TINY_VOCAB_SIZE as u32;
    match tokenizer.decode(&[1, bad]) {
        Err(TokenizerError::UnknownId { id, vocab_size }) => {
            assert_eq!(id, bad);
            assert_eq!(vocab_size, TINY_VOCAB_SIZE);
        }
        other => panic!("expected an unknown-id error, got {other:?}"),
    }
    let mut decoder = tokenizer.incremental_decoder();
    assert!(decoder.push(u32::MAX).is_err());
}

#[test]
fn corpus_compresses_to_over_2_5_bytes_per_token() {
    let tokenizer = shipped();
    let text = corpus_text();
    let ids = tokenizer.encode(&text).expect("encode");
    let bytes_per_token = text.len() as f64 / ids.len() as f64;
    println!(
        "corpus: {} bytes, {} chars, {} words, {} tokens, {bytes_per_token:.3} bytes/token",
        text.len(),
        text.chars().count(),
        text.split_whitespace().count(),
        ids.len(),
    );
    assert!(bytes_per_token > 2.5, "{bytes_per_token:.3} bytes per token");
    // Very long tokens would mean the merges memorised text rather than learnt words.
    assert!(bytes_per_token < 6.0, "{bytes_per_token:.3} bytes per token");
    assert_eq!(tokenizer.decode(&ids).expect("decode"), text);
}

#[test]
fn retraining_reproduces_the_shipped_tokenizer() {
    let retrained = train_tiny_tokenizer(&default_assets_dir()).expect("train");
    let shipped_json = fs::read_to_string(shipped_path()).expect("read shipped tokenizer");
    let retrained_json = retrained.to_json().expect("serialise");
    assert!(
        retrained_json == shipped_json,
        "retraining gave a different tokenizer.json; regenerate it with \
         `cargo test -p llm --test tokenizer -- --ignored regenerate_tiny_tokenizer_file` \
         if the corpus or the settings changed on purpose"
    );
}

#[test]
fn saved_tokenizer_loads_back_identical() {
    let dir = scratch_dir("save");
    let path = dir.join("tokenizer.json");
    let tokenizer = shipped();
    tokenizer.save(&path).expect("save");
    let loaded = Tokenizer::from_file(&path).expect("load");
    assert_eq!(loaded.to_json().expect("json"), tokenizer.to_json().expect("json"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn training_on_a_small_text_round_trips() {
    let dir = scratch_dir("train");
    let path = dir.join("text.txt");
    fs::write(&path, "the cat sat on the mat. the cat sat.\nthe mat sat on the cat.\n").expect("write text");
    let tokenizer = train_byte_level_bpe(&[path.as_path()], 300, &[ENDOFTEXT, "<|pad|>"]).expect("train");
    assert_eq!(tokenizer.token_id(ENDOFTEXT), Some(0));
    assert_eq!(tokenizer.token_id("<|pad|>"), Some(1));
    assert!(tokenizer.token_id("Ġcat").is_some());
    assert!(tokenizer.vocab_size() <= 300);
    for text in SAMPLES {
        let ids = tokenizer.encode(text).expect("encode");
        assert_eq!(&tokenizer.decode(&ids).expect("decode"), text);
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn training_errors_name_the_problem() {
    let dir = scratch_dir("train-errors");
    let missing = dir.join("missing.txt");
    let error =
        train_byte_level_bpe(&[missing.as_path()], 1000, &[ENDOFTEXT]).expect_err("a missing file cannot train");
    assert!(error.to_string().contains("missing.txt"), "{error}");

    let binary = dir.join("binary.txt");
    fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).expect("write");
    let error = train_byte_level_bpe(&[binary.as_path()], 1000, &[ENDOFTEXT]).expect_err("invalid UTF-8 cannot train");
    assert!(error.to_string().contains("binary.txt"), "{error}");
    assert!(error.to_string().contains("UTF-8"), "{error}");

    let text = dir.join("text.txt");
    fs::write(&text, "some text\n").expect("write");
    let error =
        train_byte_level_bpe(&[text.as_path()], 100, &[ENDOFTEXT]).expect_err("100 tokens cannot hold 256 bytes");
    assert!(matches!(error, TokenizerError::Settings(_)), "{error}");
    let error = train_byte_level_bpe(&[], 1000, &[ENDOFTEXT]).expect_err("no files");
    assert!(matches!(error, TokenizerError::Settings(_)), "{error}");
    let _ = fs::remove_dir_all(dir);
}

fn load_error(path: &Path) -> String {
    match Tokenizer::from_file(path) {
        Ok(_) => panic!("{} loaded although it is not a tokenizer", path.display()),
        Err(error) => error.to_string(),
    }
}

#[test]
fn missing_or_corrupt_files_are_errors_naming_the_file() {
    let dir = scratch_dir("corrupt");

    let missing = dir.join("no-such-tokenizer.json");
    let message = load_error(&missing);
    assert!(message.contains("no-such-tokenizer.json"), "{message}");

    let shipped_json = fs::read(shipped_path()).expect("read shipped tokenizer");
    let merges_at =
        String::from_utf8_lossy(&shipped_json).find("\"merges\"").expect("the shipped tokenizer has merges");
    let corruptions: Vec<(&str, Vec<u8>)> = vec![
        ("empty.json", Vec::new()),
        ("truncated.json", shipped_json[..shipped_json.len() / 2].to_vec()),
        ("binary.json", vec![0xff, 0x00, 0x12, 0x80, 0x7b]),
        ("not-a-tokenizer.json", b"{\"hello\": [1, 2, 3]}".to_vec()),
        ("array.json", b"[]".to_vec()),
        (
            "bad-model.json",
            String::from_utf8_lossy(&shipped_json)
                .replace("\"type\": \"BPE\"", "\"type\": \"NoSuchModel\"")
                .into_bytes(),
        ),
        ("bad-merge.json", {
            // A merge whose tokens are not in the vocabulary.
            let text = String::from_utf8_lossy(&shipped_json);
            let (head, tail) = text.split_at(merges_at);
            let tail = tail.replacen("\"Ġ\"", "\"not-a-token\"", 1);
            format!("{head}{tail}").into_bytes()
        }),
    ];
    for (name, bytes) in corruptions {
        let path = dir.join(name);
        fs::write(&path, &bytes).expect("write corrupt file");
        let message = load_error(&path);
        assert!(message.contains(name), "{name}: {message}");
        assert!(message.contains("tokenizer.json format"), "{name}: {message}");
    }

    // A folder is not a file.
    let message = load_error(&dir);
    assert!(message.contains("corrupt"), "{message}");

    let unwritable = dir.join("no-such-folder").join("tokenizer.json");
    let error = shipped().save(&unwritable).expect_err("save into a missing folder");
    assert!(error.to_string().contains("no-such-folder"), "{error}");
    let _ = fs::remove_dir_all(dir);
}

/// Rewrites `assets/tiny/tokenizer.json` from the corpus. Run it after changing the
/// corpus or the settings, then commit the file.
#[test]
#[ignore = "rewrites the shipped tokenizer.json"]
fn regenerate_tiny_tokenizer_file() {
    let tokenizer = regenerate_tiny_tokenizer(&default_assets_dir()).expect("regenerate");
    println!("wrote {} ({} tokens)", shipped_path().display(), tokenizer.vocab_size());
}
