//! The document loaders on untrusted files: `html_to_text` in memory, and the HTML, CSV,
//! JSON (with a pointer and a content key), JSON Lines, text and Markdown loaders on a
//! temporary file holding the input. Byte 0 picks the loader.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use catena_core::loader::{
    html_to_text, CsvLoader, HtmlLoader, JsonLinesLoader, JsonLoader, MarkdownLoader, TextLoader,
};
use catena_core::DocumentLoader;
use catena_fuzz::text;
use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, rewritten for every input.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("catena-fuzz-loaders-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let [sel, body @ ..] = data else { return };
    if sel % 8 == 0 {
        let _ = html_to_text(&text(body));
        return;
    }
    let path = scratch();
    if std::fs::write(path, body).is_err() {
        return;
    }
    let _ = match sel % 8 {
        1 => HtmlLoader::new(path).load(),
        2 => CsvLoader::new(path).load(),
        3 => CsvLoader::new(path)
            .delimiter(if sel & 8 != 0 { b';' } else { b'\t' })
            .content_columns(["text", "body"])
            .load(),
        4 => JsonLoader::new(path).load(),
        5 => JsonLoader::new(path)
            .pointer("/data/items")
            .content_key("text")
            .load(),
        6 => JsonLinesLoader::new(path).content_key("text").load(),
        _ if sel & 8 != 0 => MarkdownLoader::new(path).load(),
        _ => TextLoader::new(path).load(),
    };
});
