//! Catena's token counts and ids (the linear-time encoder of `bpe-openai`) against the
//! reference, `tiktoken-rs`'s `encode_ordinary`: on 587 sections of real technical text and on
//! adversarial input — long runs of one character class, emoji, CJK, combining marks, every
//! kind of whitespace, contractions, digits, and every substring of a mixed string cut at each
//! character boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use catena_core::splitter::{count_tokens, TextSplitter, TokenEncoding, TokenTextSplitter};
use tiktoken_rs::{cl100k_base_singleton, o200k_base_singleton, CoreBPE};

const ENCODINGS: [TokenEncoding; 2] = [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase];

fn reference(encoding: TokenEncoding) -> &'static CoreBPE {
    match encoding {
        TokenEncoding::Cl100kBase => cl100k_base_singleton(),
        _ => o200k_base_singleton(),
    }
}

fn assert_same(encoding: TokenEncoding, text: &str) {
    let expected = reference(encoding).encode_ordinary(text);
    let ids = encoding.encode(text);
    assert!(
        ids == expected,
        "{encoding}: ids differ from tiktoken for {:?}",
        text.chars().take(80).collect::<String>()
    );
    assert_eq!(count_tokens(encoding, text), expected.len(), "{encoding}");
}

fn corpus() -> Vec<String> {
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../benches/data/postgresql-15-docs.jsonl"
    ))
    .unwrap();
    raw.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn ids_equal_tiktoken_on_real_text() {
    let sections = corpus();
    assert!(sections.len() > 500);
    for encoding in ENCODINGS {
        for section in &sections {
            assert_same(encoding, section);
        }
        // And the whole corpus as one text.
        assert_same(encoding, &sections.join("\n\n"));
    }
}

#[test]
fn ids_equal_tiktoken_on_adversarial_text() {
    let cases = [
        " ".repeat(5000),
        "a".repeat(20_000),
        "\n".repeat(3000),
        " \n ".repeat(2000),
        "\r\n\t  \u{a0} x".repeat(1000),
        "  hello  world   \n\n  foo\t\tbar  ".repeat(200),
        "😀".repeat(3000),
        "👩‍👩‍👧‍👦🏳️‍🌈".repeat(400),
        "漢字かな交じり文".repeat(500),
        "한국어 텍스트입니다".repeat(400),
        "1234567890".repeat(1000),
        "3.14159e-10 0x1F 1,000,000".repeat(300),
        "don't I'LL we've THEY'RE it'S".repeat(300),
        "e\u{301}\u{302}b".repeat(800),
        "!!!???...---".repeat(1000),
        "\u{200b}\u{feff}x\u{2028}y\u{85}".repeat(700),
        " 😀 a 1 ".repeat(900),
        "<|endoftext|><|fim_prefix|>".repeat(100),
        "fn main() {\n    println!(\"{}\", x);\n}\n".repeat(300),
        "\u{0}\u{1}\u{7f}\u{fffd}".repeat(500),
    ];
    for encoding in ENCODINGS {
        for case in &cases {
            assert_same(encoding, case);
        }
        let mixed = "Hello,  world!\n\n  It's 2024 — 漢字 😀😀 \t\r\n x  'S 12345";
        let bounds: Vec<usize> = (0..=mixed.len())
            .filter(|&i| mixed.is_char_boundary(i))
            .collect();
        for (n, &start) in bounds.iter().enumerate() {
            for &end in &bounds[n..] {
                assert_same(encoding, &mixed[start..end]);
            }
        }
    }
}

#[test]
fn a_megabyte_of_one_character_class_is_counted_without_a_cut() {
    // tiktoken's backtracking pre-tokenizer cannot take such a run in one piece; this encoder
    // can, so no segmenting is needed and nothing is approximated.
    for text in [
        " ".repeat(1 << 20),
        "x".repeat(1 << 20),
        "7".repeat(1 << 20),
    ] {
        let count = count_tokens(TokenEncoding::Cl100kBase, &text);
        assert!(count > 0 && count < text.len());
        let chunks = TokenTextSplitter::builder()
            .chunk_size(4096)
            .chunk_overlap(0)
            .build()
            .unwrap()
            .split_text(&text);
        assert_eq!(chunks.concat(), text);
    }
}

#[test]
fn token_windows_are_slices_of_one_encoding() {
    let text = corpus()[..40].join("\n\n");
    let ids = reference(TokenEncoding::Cl100kBase).encode_ordinary(&text);
    let splitter = TokenTextSplitter::builder()
        .chunk_size(256)
        .chunk_overlap(32)
        .build()
        .unwrap();
    let chunks = splitter.split_text(&text);
    // Each window holds 256 tokens, overlapping the previous one by 32: the windows start
    // every 224 tokens of the whole text's encoding.
    assert_eq!(chunks.len(), (ids.len() - 32).div_ceil(224));
    let decoded = cl100k_base_singleton().decode(&ids[224..480]).unwrap();
    assert_eq!(chunks[1], decoded);
}
