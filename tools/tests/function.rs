//! `tool_fn`: schema from the argument type, calls, and argument errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use catena_core::{Tool, ToolError, TypedTool};
use catena_tools::{tool_fn, FnTool};
use serde_json::json;

/// Books a table.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct BookArgs {
    /// The restaurant's name.
    restaurant: String,
    /// How many people, 1 to 12.
    party_size: u8,
    /// Any dietary notes.
    #[serde(default)]
    notes: Option<String>,
}

#[derive(serde::Serialize)]
struct Booking {
    confirmation: String,
    party_size: u8,
}

fn booking_tool(counter: Arc<AtomicUsize>) -> Arc<dyn Tool> {
    tool_fn(
        "book_table",
        "Books a restaurant table.",
        move |args: BookArgs| {
            let counter = counter.clone();
            async move {
                if args.party_size == 0 || args.party_size > 12 {
                    return Err(ToolError::invalid_arguments(
                        "party_size must be between 1 and 12",
                    ));
                }
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                Ok(Booking {
                    confirmation: format!(
                        "{}-{n}{}",
                        args.restaurant,
                        if args.notes.is_some() { "*" } else { "" }
                    ),
                    party_size: args.party_size,
                })
            }
        },
    )
}

#[test]
fn schema_comes_from_the_argument_type() {
    let tool = booking_tool(Arc::default());
    assert_eq!(tool.name(), "book_table");
    assert_eq!(tool.description(), "Books a restaurant table.");
    let p = tool.parameters();
    assert_eq!(p["type"], "object");
    assert!(p.get("$schema").is_none());
    assert_eq!(
        p["properties"]["restaurant"]["description"],
        "The restaurant's name."
    );
    assert_eq!(p["properties"]["restaurant"]["type"], "string");
    assert_eq!(
        p["properties"]["party_size"]["description"],
        "How many people, 1 to 12."
    );
    assert_eq!(p["properties"]["party_size"]["type"], "integer");
    assert!(p["properties"]["notes"].is_object());
    let mut required: Vec<String> = serde_json::from_value(p["required"].clone()).unwrap();
    required.sort();
    assert_eq!(required, vec!["party_size", "restaurant"]);
    let def = tool.definition();
    assert_eq!(def.name, "book_table");
    assert_eq!(&def.parameters, p);
}

#[tokio::test]
async fn calls_and_errors() {
    let counter = Arc::new(AtomicUsize::new(0));
    let tool = booking_tool(counter.clone());

    let out = tool
        .call(json!({"restaurant": "Noma", "party_size": 2}))
        .await
        .unwrap();
    assert_eq!(
        out.content,
        json!({"confirmation": "Noma-1", "party_size": 2})
    );

    // Missing field: named in the error, the function never runs.
    match tool.call(json!({"restaurant": "Noma"})).await {
        Err(ToolError::InvalidArguments(m)) => assert!(m.contains("party_size"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Wrong type.
    match tool
        .call(json!({"restaurant": "Noma", "party_size": "two"}))
        .await
    {
        Err(ToolError::InvalidArguments(m)) => assert!(m.contains("invalid type"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Out of range for u8.
    assert!(matches!(
        tool.call(json!({"restaurant": "Noma", "party_size": 1000}))
            .await,
        Err(ToolError::InvalidArguments(_))
    ));
    // Not an object at all.
    assert!(matches!(
        tool.call(json!("book me a table")).await,
        Err(ToolError::InvalidArguments(_))
    ));
    // Rejected by the function itself.
    assert_eq!(
        tool.call(json!({"restaurant": "Noma", "party_size": 20}))
            .await
            .unwrap_err(),
        ToolError::InvalidArguments("party_size must be between 1 and 12".into())
    );
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn execution_errors_pass_through_and_fn_tool_is_a_typed_tool() {
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Empty {}

    let tool = FnTool::new("flaky", "Always fails.", |_: Empty| async {
        Err::<(), _>(ToolError::execution("backend down"))
    });
    assert!(format!("{tool:?}").contains("flaky"));
    assert_eq!(TypedTool::name(&tool), "flaky");
    let tool = tool.into_tool();
    assert_eq!(
        tool.call(json!({})).await.unwrap_err(),
        ToolError::Execution("backend down".into())
    );
}
