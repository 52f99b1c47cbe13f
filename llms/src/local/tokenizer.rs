//! The chat model's tokenizer, built from GGUF metadata.

use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::Tokenizer;

use catena_core::Error;

use super::load_error;

/// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
///
/// candle's builder falls back to a GPT-2 byte-level pre-tokenizer *with* a prefix space for
/// pre-tokenizer names it does not know, which turns `<|im_start|>system` into
/// `<|im_start|> system` and corrupts the chat framing. For SmolLM (`tokenizer.ggml.pre =
/// "smollm"`) we set what its own `tokenizer.json` specifies: single digits, then byte-level
/// without a prefix space. Other unknown names get byte-level without a prefix space too, which
/// is what llama.cpp does for GPT-2-style vocabularies.
pub(crate) fn from_gguf(content: &gguf_file::Content) -> Result<Tokenizer, Error> {
    let mut tokenizer =
        Tokenizer::from_gguf(content).map_err(|e| load_error("the GGUF tokenizer", e))?;
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let known_to_candle = matches!(pre, "qwen2" | "smaug-bpe" | "lfm2" | "llama3");
    if !known_to_candle {
        let byte_level = ByteLevel::new(false, true, true);
        if pre == "smollm" {
            tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
                Digits::new(true).into(),
                byte_level.into(),
            ])));
        } else {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
    }
    Ok(tokenizer)
}
