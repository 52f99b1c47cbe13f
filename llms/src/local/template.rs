//! Chat templates: the Jinja template a GGUF file carries in `tokenizer.chat_template`.

use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

use catena_core::Error;

use super::load_error;

/// ChatML, used when a model file carries no template.
pub(crate) const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// One message as chat templates expect it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TemplateMessage {
    pub(crate) role: &'static str,
    pub(crate) content: String,
}

/// A compiled chat template.
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Context<'a> {
    messages: &'a [TemplateMessage],
    add_generation_prompt: bool,
    bos_token: &'a str,
    eos_token: &'a str,
}

impl ChatTemplate {
    /// Compiles `source` (a Hugging Face chat template).
    pub(crate) fn new(source: &str, bos_token: String, eos_token: String) -> Result<Self, Error> {
        let mut env = Environment::new();
        // Hugging Face templates call Python string methods (`.strip()`, `.startswith()`).
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, JinjaError> {
                Err(JinjaError::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| load_error("the chat template", e))?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders the prompt for `messages`, ending with the assistant's turn opener.
    pub(crate) fn render(&self, messages: &[TemplateMessage]) -> Result<String, Error> {
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::other(format!("chat template: {e}")))?;
        template
            .render(minijinja::Value::from(minijinja::value::Serde(Context {
                messages,
                add_generation_prompt: true,
                bos_token: &self.bos_token,
                eos_token: &self.eos_token,
            })))
            .map_err(|e| {
                Error::invalid_input(format!("the chat template refused the messages: {e}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &'static str, content: &str) -> TemplateMessage {
        TemplateMessage {
            role,
            content: content.to_owned(),
        }
    }

    #[test]
    fn chatml_renders_turns_and_generation_prompt() {
        let t = ChatTemplate::new(CHATML, String::new(), String::new()).unwrap();
        let out = t
            .render(&[msg("system", "Be brief."), msg("user", "Hi {{x}}")])
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi {{x}}<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn raise_exception_is_an_input_error() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok",
            String::new(),
            String::new(),
        )
        .unwrap();
        let err = t.render(&[msg("system", "x")]).unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
        assert_eq!(t.render(&[msg("user", "x")]).unwrap(), "ok");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(
            "{{ messages[0].content.strip() }}",
            String::new(),
            String::new(),
        )
        .unwrap();
        assert_eq!(t.render(&[msg("user", "  padded  ")]).unwrap(), "padded");
    }

    #[test]
    fn a_broken_template_is_a_config_error() {
        let err = ChatTemplate::new("{% for %}", String::new(), String::new()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    }
}
