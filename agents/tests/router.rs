//! The router against scripted classifiers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use catena_agents::{AgentExecutor, ReactAgent, Route, Router, RouterError, RouterOutput};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{chain_fn, Chain, ChainExt, TypedTool};
use support::Echo;

fn tagged(tag: &'static str) -> Arc<dyn Chain<String, String>> {
    chain_fn(move |s: String| async move { Ok(format!("{tag}({s})")) }).boxed()
}

fn router(answer: &str, default: Option<&str>) -> (Router, Arc<ScriptedChatModel>) {
    let model = Arc::new(ScriptedChatModel::new().with_text(answer));
    let mut b = Router::builder(model.clone())
        .route(Route::new("math", "Arithmetic questions.", tagged("math")))
        .route(Route::new(
            "weather",
            "Weather forecasts.",
            tagged("weather"),
        ))
        .route(Route::new("chat", "Anything else.", tagged("chat")));
    if let Some(d) = default {
        b = b.default_route(d);
    }
    (b.build().unwrap(), model)
}

#[tokio::test]
async fn each_route_is_picked() {
    for name in ["math", "weather", "chat"] {
        let (router, model) = router(name, None);
        let out = router.invoke("q".to_string()).await.unwrap();
        assert_eq!(out.route, name);
        assert_eq!(out.output, format!("{name}(q)"));
        assert!(!out.defaulted);
        let req = &model.requests()[0];
        assert!(req.tools.is_empty());
        let prompt = req.messages[0].text();
        assert!(prompt.contains("math: Arithmetic questions."));
        assert!(prompt.contains("weather: Weather forecasts."));
        assert!(prompt.contains("chat: Anything else."));
        assert!(prompt.contains("only the name"));
        assert!(prompt.contains("Input: q"));
    }
}

#[tokio::test]
async fn answers_are_parsed_leniently() {
    for answer in [
        "  'Math'. ",
        "MATH",
        "\"math\"",
        "**math**",
        "`math`\n",
        "Route: math",
        "\n\nmath!\nBecause it is arithmetic.",
    ] {
        let (router, _) = router(answer, None);
        let out = router.route("1+1".to_string()).await.unwrap();
        assert_eq!(out.route, "math", "answer {answer:?}");
    }
}

#[tokio::test]
async fn unknown_answer_goes_to_the_default_route() {
    let (router, _) = router("astrology", Some("chat"));
    let out = router.invoke("my horoscope?".to_string()).await.unwrap();
    assert_eq!(out.route, "chat");
    assert_eq!(out.output, "chat(my horoscope?)");
    assert!(out.defaulted);
}

#[tokio::test]
async fn unknown_answer_without_default_is_a_typed_error() {
    let (router, _) = router("I would say math or weather", None);
    let err = router.invoke("?".to_string()).await.unwrap_err();
    assert_eq!(
        RouterError::from_error(&err),
        Some(&RouterError::UnknownRoute {
            answer: "I would say math or weather".into(),
            routes: vec!["math".into(), "weather".into(), "chat".into()],
        })
    );
}

#[tokio::test]
async fn agents_are_route_targets() {
    let worker = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("echo", r#"{"text":"sun"}"#)
            .with_text("It is sunny."),
    );
    let executor = AgentExecutor::builder(worker.clone())
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();
    let react_model = Arc::new(ScriptedChatModel::new().with_text("Final Answer: 4"));
    let react = ReactAgent::builder(react_model).build().unwrap();
    let classifier = Arc::new(
        ScriptedChatModel::new()
            .with_text("weather")
            .with_text("math"),
    );
    let router = Router::builder(classifier)
        .route(Route::new("weather", "Weather.", Arc::new(executor)))
        .route(Route::new("math", "Math.", Arc::new(react)))
        .build()
        .unwrap();
    let out = router.invoke("Weather?".to_string()).await.unwrap();
    assert_eq!(
        (out.route.as_str(), out.output.as_str()),
        ("weather", "It is sunny.")
    );
    assert_eq!(
        worker.requests()[0].messages.last().unwrap().text(),
        "Weather?"
    );
    let out: RouterOutput = router.invoke("2+2?".to_string()).await.unwrap();
    assert_eq!((out.route.as_str(), out.output.as_str()), ("math", "4"));
}

#[test]
fn builder_rejects_bad_config() {
    let model = Arc::new(ScriptedChatModel::new());
    assert!(Router::builder(model.clone()).build().is_err());
    assert!(Router::builder(model.clone())
        .route(Route::new("a", "A.", tagged("a")))
        .route(Route::new("A", "A again.", tagged("a")))
        .build()
        .is_err());
    assert!(Router::builder(model.clone())
        .route(Route::new("a", "A.", tagged("a")))
        .default_route("b")
        .build()
        .is_err());
    assert!(Router::builder(model)
        .route(Route::new("'.'", "Nothing.", tagged("a")))
        .build()
        .is_err());
}
