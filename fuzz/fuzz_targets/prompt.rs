//! Prompt templates: parsing `{variable}` / `{{` `}}` templates, formatting them with values,
//! and chat and few-shot templates built from the same text.
//! Input: template, then after a 0xFF byte the value every variable gets.
#![no_main]

use catena_core::prompt::{FewShotPromptTemplate, PromptValues};
use catena_core::{ChatPromptTemplate, PromptTemplate};
use catena_fuzz::{split_ff, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (template, value) = split_ff(data);
    let (template, value) = (text(template), text(value));
    let Ok(prompt) = PromptTemplate::new(template.as_ref()) else {
        let _ = ChatPromptTemplate::builder()
            .system(template.as_ref())
            .build();
        return;
    };
    let values: PromptValues = prompt
        .variables()
        .iter()
        .map(|v| (v.clone(), value.to_string()))
        .collect();
    let formatted = prompt.format_values(&values);
    assert!(
        formatted.is_ok(),
        "every variable has a value: {formatted:?}"
    );
    let _ = prompt.format_values(&PromptValues::new());
    if let Some(first) = prompt.variables().first() {
        let _ = prompt.clone().partial(first.clone(), value.to_string());
    }
    if let Ok(chat) = ChatPromptTemplate::builder()
        .system("You are terse.")
        .user(template.as_ref())
        .build()
    {
        let _ = chat.format_values(&values);
    }
    if let Ok(few) = FewShotPromptTemplate::builder(prompt.clone())
        .example(values.clone())
        .prefix(template.as_ref())
        .suffix("{question}")
        .build()
    {
        let mut values = values;
        values.insert("question", value.to_string());
        let _ = few.format_values(&values);
    }
});
