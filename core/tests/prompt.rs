#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Prompt templates: parsing, escaping, injection safety, partials, chat templates and
//! few-shot templates.

use std::collections::HashMap;
use std::sync::Arc;

use catena_core::prompt::{
    ChatPromptTemplate, FewShotChatMessagePromptTemplate, FewShotPromptTemplate, MessageTemplate,
    MessagesPlaceholder, Prompt, PromptError, PromptTemplate, PromptValue, PromptValues,
};
use catena_core::{Error, Message, Role};

#[test]
fn formats_variables_in_order() {
    let t = PromptTemplate::new("Hello {name}, welcome to {place}. Bye {name}!").unwrap();
    assert_eq!(t.input_variables(), ["name", "place"]);
    assert_eq!(
        t.format([("name", "Ada"), ("place", "Rust")]).unwrap(),
        "Hello Ada, welcome to Rust. Bye Ada!"
    );
}

#[test]
fn accepts_maps_and_prompt_values() {
    let t = PromptTemplate::new("{a}+{b}").unwrap();
    let map: HashMap<String, String> = [
        ("a".to_owned(), "1".to_owned()),
        ("b".to_owned(), "2".to_owned()),
    ]
    .into();
    assert_eq!(t.format(&map).unwrap(), "1+2");
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"a": "x", "b": 3}"#).unwrap();
    assert_eq!(t.format(&json).unwrap(), "x+3");
    let values = PromptValues::new().with("a", 1).with("b", true);
    assert_eq!(t.format(&values).unwrap(), "1+true");
    assert_eq!(t.format_values(&values).unwrap(), "1+true");
}

#[test]
fn double_braces_are_literal() {
    let t = PromptTemplate::new("{{x}} and {{{y}}} and }}{{").unwrap();
    assert_eq!(t.input_variables(), ["y"]);
    assert_eq!(t.format([("y", "Y")]).unwrap(), "{x} and {Y} and }{");
    let none = PromptTemplate::new("{{x}}").unwrap();
    assert!(none.input_variables().is_empty());
    assert_eq!(none.format(PromptValues::new()).unwrap(), "{x}");
}

#[test]
fn values_are_data_not_syntax() {
    let t = PromptTemplate::new("System: {system}\nUser: {input}").unwrap();
    let out = t
        .format([("system", "Be kind."), ("input", "{system}")])
        .unwrap();
    assert_eq!(out, "System: Be kind.\nUser: {system}");

    let out = t.format([("system", "{{"), ("input", "}}{")]).unwrap();
    assert_eq!(out, "System: {{\nUser: }}{");

    // A value naming another variable is not expanded, even when that variable exists.
    let out = t
        .format([("system", "secret"), ("input", "show {system} now")])
        .unwrap();
    assert_eq!(out, "System: secret\nUser: show {system} now");
}

#[test]
fn formatting_is_single_pass() {
    // The value of `a` looks like a template for `b`; it must not be expanded.
    let t = PromptTemplate::new("{a}{b}").unwrap();
    assert_eq!(t.format([("a", "{"), ("b", "b}")]).unwrap(), "{b}");
}

#[test]
fn missing_and_unknown_variables_are_errors() {
    let t = PromptTemplate::new("Hi {name}").unwrap();
    assert_eq!(
        t.format(PromptValues::new()).unwrap_err(),
        PromptError::MissingVariable("name".into())
    );
    assert_eq!(
        t.format([("name", "Ada"), ("extra", "x")]).unwrap_err(),
        PromptError::UnknownVariable("extra".into())
    );
    // Converts into the crate error.
    let err: Error = t.format(PromptValues::new()).unwrap_err().into();
    assert!(matches!(
        err,
        Error::Prompt(PromptError::MissingVariable(_))
    ));
}

#[test]
fn unbalanced_and_empty_braces_are_rejected_with_positions() {
    assert_eq!(
        PromptTemplate::new("Hi {name").unwrap_err(),
        PromptError::UnclosedBrace { position: 3 }
    );
    assert_eq!(
        PromptTemplate::new("Hi name}").unwrap_err(),
        PromptError::UnmatchedClosingBrace { position: 7 }
    );
    assert_eq!(
        PromptTemplate::new("a {} b").unwrap_err(),
        PromptError::EmptyVariable { position: 2 }
    );
    assert_eq!(
        PromptTemplate::new("{a}}").unwrap_err(),
        PromptError::UnmatchedClosingBrace { position: 3 }
    );
}

#[test]
fn attribute_index_conversion_and_format_spec_are_rejected() {
    for (template, name) in [
        ("{a.b}", "a.b"),
        ("{a[0]}", "a[0]"),
        ("{a!r}", "a!r"),
        ("{a:>10}", "a:>10"),
        ("{__class__.__mro__}", "__class__.__mro__"),
        ("{ a }", " a "),
        ("{0}", "0"),
    ] {
        assert_eq!(
            PromptTemplate::new(template).unwrap_err(),
            PromptError::InvalidVariableName {
                name: name.into(),
                position: 0
            },
            "{template}"
        );
    }
}

#[test]
fn partials_remove_inputs_and_can_be_overridden() {
    let t = PromptTemplate::new("Write {lang} code for {task}.").unwrap();
    let rust = t.partial("lang", "Rust").unwrap();
    assert_eq!(rust.input_variables(), ["task"]);
    assert_eq!(t.input_variables(), ["lang", "task"], "original unchanged");
    assert_eq!(
        rust.format([("task", "sorting")]).unwrap(),
        "Write Rust code for sorting."
    );
    assert_eq!(
        rust.format([("task", "x"), ("lang", "Go")]).unwrap(),
        "Write Go code for x."
    );
    assert_eq!(
        t.partial("nope", "x").unwrap_err(),
        PromptError::UnknownVariable("nope".into())
    );
    // A partial value is data too.
    let tricky = t.partial("lang", "{task}").unwrap();
    assert_eq!(
        tricky.format([("task", "T")]).unwrap(),
        "Write {task} code for T."
    );
}

#[test]
fn declared_input_variables_are_validated() {
    let t = PromptTemplate::new("{a} {b}").unwrap();
    assert!(t.clone().with_input_variables(["b", "a"]).is_ok());
    assert_eq!(
        t.with_input_variables(["a", "c"]).unwrap_err(),
        PromptError::InputVariablesMismatch {
            declared: vec!["a".into(), "c".into()],
            found: vec!["a".into(), "b".into()],
        }
    );
}

#[test]
fn messages_for_a_text_variable_are_rejected() {
    let t = PromptTemplate::new("{history}").unwrap();
    assert_eq!(
        t.format([("history", vec![Message::user("hi")])])
            .unwrap_err(),
        PromptError::WrongValueType {
            name: "history".into(),
            expected: "text"
        }
    );
}

fn chat_prompt() -> ChatPromptTemplate {
    ChatPromptTemplate::builder()
        .system("You are {persona}.")
        .placeholder(MessagesPlaceholder::new("history"))
        .user("{question}")
        .build()
        .unwrap()
}

#[test]
fn chat_template_inserts_history() {
    let prompt = chat_prompt();
    assert_eq!(prompt.input_variables(), ["persona", "history", "question"]);
    let history = vec![Message::user("Hi"), Message::assistant("Hello!")];
    let values = PromptValues::new()
        .with("persona", "a pirate")
        .with("history", history.clone())
        .with("question", "Where is the gold?");
    let messages = prompt.format_values(&values).unwrap();
    assert_eq!(
        messages,
        vec![
            Message::system("You are a pirate."),
            history[0].clone(),
            history[1].clone(),
            Message::user("Where is the gold?"),
        ]
    );
}

#[test]
fn chat_placeholder_required_optional_and_typed() {
    let prompt = chat_prompt();
    let err = prompt
        .format_messages([("persona", "p"), ("question", "q")])
        .unwrap_err();
    assert_eq!(err, PromptError::MissingVariable("history".into()));

    let err = prompt
        .format_messages([("persona", "p"), ("question", "q"), ("history", "text")])
        .unwrap_err();
    assert_eq!(
        err,
        PromptError::WrongValueType {
            name: "history".into(),
            expected: "a list of messages"
        }
    );

    let optional = ChatPromptTemplate::builder()
        .placeholder(MessagesPlaceholder::new("history").optional(true))
        .user("{question}")
        .build()
        .unwrap();
    assert_eq!(optional.input_variables(), ["question"]);
    assert_eq!(
        optional.format_messages([("question", "q")]).unwrap(),
        vec![Message::user("q")]
    );
}

#[test]
fn chat_values_never_become_syntax_in_other_messages() {
    let prompt = ChatPromptTemplate::from_messages([
        (Role::System, "Secret: {secret}"),
        (Role::User, "{input}"),
        (Role::Assistant, "Echo: {input}"),
    ])
    .unwrap();
    let messages = prompt
        .format_messages([("secret", "s3cr3t"), ("input", "{secret} {{ }}")])
        .unwrap();
    assert_eq!(messages[1].text(), "{secret} {{ }}");
    assert_eq!(messages[2].text(), "Echo: {secret} {{ }}");
    assert_eq!(messages[2].role, Role::Assistant);
    // History messages are inserted verbatim, never parsed.
    let with_history = ChatPromptTemplate::builder()
        .placeholder(MessagesPlaceholder::new("history"))
        .user("{input}")
        .build()
        .unwrap();
    let out = with_history
        .format_values(
            &PromptValues::new()
                .with("history", vec![Message::user("{input}")])
                .with("input", "x"),
        )
        .unwrap();
    assert_eq!(out[0].text(), "{input}");
}

#[test]
fn chat_unknown_variable_and_template_errors() {
    let prompt = chat_prompt();
    let values = PromptValues::new()
        .with("persona", "p")
        .with("history", Vec::<Message>::new())
        .with("question", "q")
        .with("questoin", "typo");
    assert_eq!(
        prompt.format_values(&values).unwrap_err(),
        PromptError::UnknownVariable("questoin".into())
    );

    let err = ChatPromptTemplate::builder()
        .system("ok")
        .user("bad {a.b}")
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        PromptError::InvalidMessageTemplate {
            index: 1,
            source: Box::new(PromptError::InvalidVariableName {
                name: "a.b".into(),
                position: 4
            })
        }
    );

    let err = ChatPromptTemplate::builder()
        .user("{history}")
        .placeholder(MessagesPlaceholder::new("history"))
        .build()
        .unwrap_err();
    assert_eq!(err, PromptError::ConflictingVariable("history".into()));
}

#[test]
fn chat_partials_for_text_and_placeholders() {
    let prompt = chat_prompt()
        .partial("persona", "a robot")
        .unwrap()
        .partial("history", vec![Message::assistant("beep")])
        .unwrap();
    assert_eq!(prompt.input_variables(), ["question"]);
    let messages = prompt.format_messages([("question", "why?")]).unwrap();
    assert_eq!(
        messages,
        vec![
            Message::system("You are a robot."),
            Message::assistant("beep"),
            Message::user("why?"),
        ]
    );
    assert_eq!(
        chat_prompt().partial("history", "text").unwrap_err(),
        PromptError::WrongValueType {
            name: "history".into(),
            expected: "a list of messages"
        }
    );
    let built = ChatPromptTemplate::builder()
        .system("{a}")
        .partial("a", "A")
        .build()
        .unwrap();
    assert!(built.input_variables().is_empty());
    assert_eq!(
        built.format_messages(PromptValues::new()).unwrap()[0].text(),
        "A"
    );
}

#[test]
fn literal_messages_keep_braces() {
    let prompt = ChatPromptTemplate::builder()
        .literal(Message::system("JSON looks like {\"a\": 1}"))
        .user("{q}")
        .build()
        .unwrap();
    assert_eq!(prompt.input_variables(), ["q"]);
    let out = prompt.format_messages([("q", "?")]).unwrap();
    assert_eq!(out[0].text(), "JSON looks like {\"a\": 1}");
}

#[test]
fn message_template_formats_one_message() {
    let t = MessageTemplate::new(Role::Assistant, "{x}!").unwrap();
    assert_eq!(t.role(), Role::Assistant);
    assert_eq!(t.format([("x", "ok")]).unwrap(), Message::assistant("ok!"));
}

#[test]
fn few_shot_prompt_exact_output() {
    let example = PromptTemplate::new("Input: {input}\nOutput: {output}").unwrap();
    let prompt = FewShotPromptTemplate::builder(example)
        .prefix("Give the antonym of every input.")
        .examples([
            PromptValues::from([("input", "happy"), ("output", "sad")]),
            PromptValues::from([("input", "tall"), ("output", "short")]),
        ])
        .suffix("Input: {adjective}\nOutput:")
        .build()
        .unwrap();
    assert_eq!(prompt.input_variables(), ["adjective"]);
    assert_eq!(
        prompt.format([("adjective", "big")]).unwrap(),
        "Give the antonym of every input.\n\n\
         Input: happy\nOutput: sad\n\n\
         Input: tall\nOutput: short\n\n\
         Input: big\nOutput:"
    );
}

#[test]
fn few_shot_separator_empty_prefix_and_injection() {
    let example = PromptTemplate::new("{q}={a}").unwrap();
    let prompt = FewShotPromptTemplate::builder(example)
        .example([("q", "1+1"), ("a", "2")])
        .example([("q", "{x}"), ("a", "{{")])
        .suffix("{x}=")
        .separator("\n")
        .build()
        .unwrap();
    // No prefix piece, example braces stay literal, the value is data.
    assert_eq!(
        prompt.format([("x", "{q}")]).unwrap(),
        "1+1=2\n{x}={{\n{q}="
    );
    assert_eq!(
        prompt.format([("y", "1")]).unwrap_err(),
        PromptError::UnknownVariable("y".into())
    );
}

#[test]
fn few_shot_partials_and_bad_examples() {
    let example = PromptTemplate::new("{q} -> {a}").unwrap();
    let prompt = FewShotPromptTemplate::builder(example.clone())
        .prefix("Task: {task}")
        .example([("q", "a"), ("a", "b"), ("note", "extra keys are ignored")])
        .suffix("{q} ->")
        .partial("task", "map")
        .build()
        .unwrap();
    assert_eq!(prompt.input_variables(), ["q"]);
    assert_eq!(
        prompt.format([("q", "c")]).unwrap(),
        "Task: map\n\na -> b\n\nc ->"
    );

    let err = FewShotPromptTemplate::builder(example)
        .example([("q", "a"), ("a", "b")])
        .example([("q", "only q")])
        .build()
        .unwrap_err();
    assert_eq!(
        err,
        PromptError::InvalidExample {
            index: 1,
            source: Box::new(PromptError::MissingVariable("a".into()))
        }
    );
}

#[test]
fn few_shot_chat_alternates_user_and_assistant() {
    let few_shot = FewShotChatMessagePromptTemplate::from_examples(
        "input",
        "output",
        [
            PromptValues::from([("input", "2 🦜 2"), ("output", "4")]),
            PromptValues::from([("input", "2 🦜 3"), ("output", "{5}")]),
        ],
    )
    .unwrap();
    assert_eq!(
        few_shot.messages(),
        [
            Message::user("2 🦜 2"),
            Message::assistant("4"),
            Message::user("2 🦜 3"),
            Message::assistant("{5}"),
        ]
    );

    let prompt = ChatPromptTemplate::builder()
        .system("You are a wondrous wizard of math.")
        .few_shot(&few_shot)
        .user("{input}")
        .build()
        .unwrap();
    let out = prompt
        .format_messages([("input", "What is 2 🦜 9?")])
        .unwrap();
    let roles: Vec<Role> = out.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Assistant,
            Role::User
        ]
    );
    assert_eq!(out[4].text(), "{5}");
    assert_eq!(out[5].text(), "What is 2 🦜 9?");
}

#[test]
fn few_shot_chat_with_custom_example_prompt() {
    let example_prompt = ChatPromptTemplate::from_messages([
        (Role::User, "Translate: {en}"),
        (Role::Assistant, "{fr}"),
    ])
    .unwrap();
    let few_shot = FewShotChatMessagePromptTemplate::new(
        example_prompt.clone(),
        [[("en", "cat"), ("fr", "chat")]],
    )
    .unwrap();
    assert_eq!(
        few_shot.messages(),
        [Message::user("Translate: cat"), Message::assistant("chat")]
    );
    let err = FewShotChatMessagePromptTemplate::new(example_prompt, [[("en", "dog")]]).unwrap_err();
    assert_eq!(
        err,
        PromptError::InvalidExample {
            index: 0,
            source: Box::new(PromptError::MissingVariable("fr".into()))
        }
    );
}

#[test]
fn prompts_are_usable_as_trait_objects() {
    let prompts: Vec<Arc<dyn Prompt>> = vec![
        Arc::new(PromptTemplate::new("Q: {q}").unwrap()),
        Arc::new(
            ChatPromptTemplate::from_messages([(Role::System, "S"), (Role::User, "{q}")]).unwrap(),
        ),
    ];
    let values = PromptValues::new().with("q", "why");
    assert_eq!(prompts[0].input_variables(), ["q"]);
    assert_eq!(
        prompts[0].format_messages(&values).unwrap(),
        vec![Message::user("Q: why")]
    );
    assert_eq!(prompts[1].format_messages(&values).unwrap().len(), 2);
    assert_eq!(PromptValue::from("x").as_text(), Some("x"));
}

#[test]
fn chat_message_template_partials_are_not_required() {
    let template = PromptTemplate::new("{greeting}, {name}!")
        .unwrap()
        .partial("greeting", "Hello")
        .unwrap();
    let prompt = ChatPromptTemplate::builder()
        .message_template(MessageTemplate::from_template(Role::User, template))
        .build()
        .unwrap();
    assert_eq!(prompt.input_variables(), ["name"]);
    assert_eq!(
        prompt.format_messages([("name", "Ada")]).unwrap(),
        vec![Message::user("Hello, Ada!")]
    );
    // A value given at format time still overrides the partial.
    assert_eq!(
        prompt
            .format_messages([("greeting", "Hi"), ("name", "Ada")])
            .unwrap(),
        vec![Message::user("Hi, Ada!")]
    );

    // Needed unfixed by another message, the variable stays required.
    let fixed = PromptTemplate::new("{name}")
        .unwrap()
        .partial("name", "Ada")
        .unwrap();
    let prompt = ChatPromptTemplate::builder()
        .message_template(MessageTemplate::from_template(Role::System, fixed))
        .user("{name}?")
        .build()
        .unwrap();
    assert_eq!(prompt.input_variables(), ["name"]);
}

#[test]
fn few_shot_prefix_and_suffix_rendering_empty_are_left_out() {
    let example = PromptTemplate::new("{q} -> {a}").unwrap();
    let prompt = FewShotPromptTemplate::builder(example)
        .prefix("{intro}")
        .example([("q", "a"), ("a", "b")])
        .suffix("{outro}")
        .build()
        .unwrap();
    assert_eq!(
        prompt.format([("intro", ""), ("outro", "")]).unwrap(),
        "a -> b"
    );
    assert_eq!(
        prompt.format([("intro", "Hi"), ("outro", "")]).unwrap(),
        "Hi\n\na -> b"
    );
    assert_eq!(
        prompt.format([("intro", ""), ("outro", "Bye")]).unwrap(),
        "a -> b\n\nBye"
    );
}
