//! The text splitters: character (plain and regex separator), recursive (per language),
//! markdown headers and tokens. Bytes 0-2 pick chunk size, overlap and options.
//! Oracle: `add_start_index` offsets point at the chunk's text in the input.
#![no_main]

use catena_core::splitter::Language;
use catena_core::{
    CharacterTextSplitter, Document, MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter,
    TextSplitter, TokenEncoding, TokenTextSplitter,
};
use catena_fuzz::text;
use libfuzzer_sys::fuzz_target;

const LANGUAGES: [Language; 8] = [
    Language::Rust,
    Language::Python,
    Language::Markdown,
    Language::Html,
    Language::Latex,
    Language::Js,
    Language::Cobol,
    Language::Haskell,
];

fn check(splitter: &dyn TextSplitter, text: &str) {
    for chunk in splitter.split_chunks(text) {
        let start = chunk.start;
        assert!(
            text.get(start..)
                .is_some_and(|rest| rest.starts_with(chunk.text.as_str())),
            "chunk {:?} is not at offset {start}",
            chunk.text
        );
    }
    let _ = splitter.split_documents(&[Document::new(text)]);
}

fuzz_target!(|data: &[u8]| {
    let [size, overlap, opts, rest @ ..] = data else {
        return;
    };
    let text = text(rest);
    let size = usize::from(*size) % 64 + 1;
    let overlap = usize::from(*overlap) % (size + 1);
    let keep = opts & 1 != 0;
    let strip = opts & 2 != 0;
    let language = LANGUAGES[usize::from(opts >> 5) % LANGUAGES.len()];

    if let Ok(s) = CharacterTextSplitter::builder()
        .separator(if opts & 4 != 0 { r"\s+" } else { "\n\n" })
        .is_separator_regex(opts & 4 != 0)
        .chunk_size(size)
        .chunk_overlap(overlap)
        .keep_separator(keep)
        .strip_whitespace(strip)
        .add_start_index(true)
        .build()
    {
        let _ = s.split_text(&text);
    }
    if let Ok(s) = RecursiveCharacterTextSplitter::from_language(language)
        .chunk_size(size)
        .chunk_overlap(overlap)
        .keep_separator(keep)
        .strip_whitespace(strip)
        .build()
    {
        let _ = s.split_text(&text);
    }
    if let Ok(s) = RecursiveCharacterTextSplitter::builder()
        .chunk_size(size)
        .chunk_overlap(overlap)
        .strip_whitespace(false)
        .add_start_index(true)
        .build()
    {
        check(&s, &text);
    }
    let md = MarkdownHeaderTextSplitter::new([("#", "h1"), ("##", "h2"), ("###", "h3")])
        .with_return_each_line(opts & 8 != 0)
        .with_strip_headers(opts & 16 != 0);
    let _ = md.split_text(&text);
    if opts & 8 != 0 {
        if let Ok(s) = TokenTextSplitter::builder()
            .encoding(TokenEncoding::Cl100kBase)
            .chunk_size(size)
            .chunk_overlap(overlap.min(size.saturating_sub(1)))
            .build()
        {
            let _ = s.split_text(&text);
        }
    }
});
