//! Properties of the splitters on arbitrary text: no text is lost, offsets point into the
//! source, chunk sizes are respected where the separators allow it, token windows round-trip,
//! and nothing panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use catena_core::splitter::{
    count_tokens, CharacterTextSplitter, Chunk, KeepSeparator, Language,
    MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter, TextSplitter, TokenEncoding,
    TokenTextSplitter,
};
use proptest::prelude::*;

/// Text with plenty of separators, multi-byte characters and whitespace runs, or anything.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ab é😀。#`~\\-\\n\\t\u{3000}]{0,300}",
        "(\\PC{0,12}[ \\n]{1,3}){0,25}",
        any::<String>(),
    ]
}

fn keep() -> impl Strategy<Value = KeepSeparator> {
    prop_oneof![Just(KeepSeparator::Start), Just(KeepSeparator::End)]
}

/// Sizes: chunk_size in 1..60 and an overlap no larger than it.
fn sizes() -> impl Strategy<Value = (usize, usize)> {
    (1usize..60).prop_flat_map(|size| (Just(size), 0..=size))
}

/// Each chunk is the slice of the source at its offset, the chunks are in order, and with the
/// overlap removed they reassemble the source exactly.
fn assert_lossless(input: &str, chunks: &[Chunk]) -> Result<(), TestCaseError> {
    let mut rebuilt = String::new();
    let mut covered = 0;
    let mut previous_start = 0;
    for chunk in chunks {
        let end = chunk.start + chunk.text.len();
        prop_assert_eq!(input.get(chunk.start..end), Some(chunk.text.as_str()));
        prop_assert!(chunk.start >= previous_start, "chunks out of order");
        prop_assert!(chunk.start <= covered, "gap before byte {}", chunk.start);
        if end > covered {
            rebuilt.push_str(&input[covered..end]);
            covered = end;
        }
        previous_start = chunk.start;
    }
    prop_assert_eq!(rebuilt, input);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn recursive_loses_no_text(input in text(), (size, overlap) in sizes(), keep in keep()) {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .keep_separator(keep)
            .strip_whitespace(false)
            .build()
            .unwrap();
        let chunks = splitter.split_chunks(&input);
        assert_lossless(&input, &chunks)?;
        let texts: Vec<String> = chunks.into_iter().map(|c| c.text).collect();
        prop_assert_eq!(splitter.split_text(&input), texts);
    }

    #[test]
    fn code_splitter_loses_no_text(
        input in "(fn |let |\\n|\\n\\n|match |[a-z{}();é ]){0,200}",
        (size, overlap) in sizes(),
        keep in keep(),
    ) {
        let splitter = RecursiveCharacterTextSplitter::from_language(Language::Rust)
            .chunk_size(size)
            .chunk_overlap(overlap)
            .keep_separator(keep)
            .strip_whitespace(false)
            .build()
            .unwrap();
        assert_lossless(&input, &splitter.split_chunks(&input))?;
    }

    #[test]
    fn character_loses_no_text(
        input in text(),
        (size, overlap) in sizes(),
        keep in keep(),
        separator in prop::sample::select(vec!["\n\n", "\n", " ", "é", "", "a"]),
    ) {
        let splitter = CharacterTextSplitter::builder()
            .separator(separator)
            .chunk_size(size)
            .chunk_overlap(overlap)
            .keep_separator(keep)
            .strip_whitespace(false)
            .build()
            .unwrap();
        assert_lossless(&input, &splitter.split_chunks(&input))?;
    }

    #[test]
    fn recursive_chunks_fit(input in text(), (size, overlap) in sizes(), strip in any::<bool>()) {
        // The default separators end with "", so every piece can be made small enough.
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .strip_whitespace(strip)
            .build()
            .unwrap();
        for chunk in splitter.split_text(&input) {
            prop_assert!(chunk.chars().count() <= size, "{chunk:?} is longer than {size}");
            prop_assert!(!chunk.is_empty());
        }
    }

    #[test]
    fn offsets_stay_in_the_source_when_separators_are_discarded(
        input in text(),
        (size, overlap) in sizes(),
        strip in any::<bool>(),
    ) {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .keep_separator(false)
            .strip_whitespace(strip)
            .build()
            .unwrap();
        for chunk in splitter.split_chunks(&input) {
            prop_assert!(input.is_char_boundary(chunk.start));
            prop_assert!(chunk.start <= input.len());
        }
    }

    #[test]
    fn token_windows_round_trip(input in text(), size in 1usize..12) {
        let splitter = TokenTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(0)
            .build()
            .unwrap();
        let chunks = splitter.split_chunks(&input);
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        prop_assert_eq!(&joined, &input);
        assert_lossless(&input, &chunks)?;
    }

    #[test]
    fn overlapping_token_windows_cover_the_text(
        input in text(),
        (size, overlap) in (2usize..16).prop_flat_map(|s| (Just(s), 0..s)),
        encoding in prop_oneof![Just(TokenEncoding::Cl100kBase), Just(TokenEncoding::O200kBase)],
    ) {
        let splitter = TokenTextSplitter::builder()
            .encoding(encoding)
            .chunk_size(size)
            .chunk_overlap(overlap)
            .build()
            .unwrap();
        assert_lossless(&input, &splitter.split_chunks(&input))?;
    }

    #[test]
    fn token_length_recursive_never_panics(input in text(), (size, overlap) in sizes()) {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .token_length(TokenEncoding::O200kBase)
            .build()
            .unwrap();
        for chunk in splitter.split_text(&input) {
            prop_assert!(count_tokens(TokenEncoding::O200kBase, &chunk) > 0);
        }
    }

    #[test]
    fn markdown_never_panics(
        input in "(#{1,4} |```|~~~|\\*\\*|\\n|[a-zé\\t ]){0,200}",
        strip in any::<bool>(),
        each in any::<bool>(),
    ) {
        let splitter = MarkdownHeaderTextSplitter::new([("#", "h1"), ("##", "h2"), ("**", "b")])
            .with_custom_header_pattern("**", 3)
            .with_strip_headers(strip)
            .with_return_each_line(each);
        let _ = splitter.split_text(&input);
    }

    #[test]
    fn start_index_is_a_char_index(input in text(), (size, overlap) in sizes()) {
        let splitter = RecursiveCharacterTextSplitter::builder()
            .chunk_size(size)
            .chunk_overlap(overlap)
            .add_start_index(true)
            .build()
            .unwrap();
        let chars: Vec<char> = input.chars().collect();
        for doc in splitter.create_documents(&[input.as_str()], &[]) {
            let index = doc.metadata["start_index"].as_u64().unwrap() as usize;
            let found: String = chars.iter().skip(index).take(doc.content.chars().count()).collect();
            prop_assert_eq!(found, doc.content);
        }
    }
}

#[test]
fn invalid_configurations_are_errors() {
    assert!(RecursiveCharacterTextSplitter::builder()
        .chunk_size(0)
        .build()
        .is_err());
    assert!(CharacterTextSplitter::builder()
        .chunk_size(3)
        .chunk_overlap(4)
        .build()
        .is_err());
    assert!(CharacterTextSplitter::builder()
        .separator("(?=x)")
        .is_separator_regex(true)
        .build()
        .is_err());
    assert!(TokenTextSplitter::builder()
        .encoding_name("p99k")
        .build()
        .is_err());
}
