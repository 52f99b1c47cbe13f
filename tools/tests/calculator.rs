//! The calculator: results, every error kind, the classic bombs and "never panics".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use catena_core::{Tool, ToolError, TypedTool};
use catena_tools::{evaluate, evaluate_with, CalcError, CalcLimits, Calculator};
use proptest::prelude::*;

#[test]
fn table_of_results() {
    let pi = std::f64::consts::PI;
    let e = std::f64::consts::E;
    let cases: &[(&str, f64)] = &[
        ("1", 1.0),
        ("  42  ", 42.0),
        ("3.25", 3.25),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("2.5E-2", 0.025),
        ("1e+2", 100.0),
        ("1 + 2 * 3", 7.0),
        ("(1 + 2) * 3", 9.0),
        ("10 - 4 - 3", 3.0),
        ("100 / 10 / 5", 2.0),
        ("7 % 3", 1.0),
        ("-7 % 3", -1.0),
        ("2 * 3 % 4", 2.0),
        ("2^3", 8.0),
        ("2**3", 8.0),
        ("2^3^2", 512.0),
        ("(2^3)^2", 64.0),
        ("-2^2", -4.0),
        ("(-2)^2", 4.0),
        ("2^-1", 0.5),
        ("-2^-2", -0.25),
        ("--3", 3.0),
        ("+3", 3.0),
        ("2 * -3", -6.0),
        ("2 - -3", 5.0),
        ("1 - 2 + 3", 2.0),
        ("2 * 3 ^ 2", 18.0),
        ("sqrt(16)", 4.0),
        ("abs(-3.5)", 3.5),
        ("ln(e)", 1.0),
        ("log10(1000)", 3.0),
        ("sin(0)", 0.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
        ("exp(0)", 1.0),
        ("floor(-2.5)", -3.0),
        ("ceil(2.1)", 3.0),
        ("round(2.5)", 3.0),
        ("round(-2.5)", -3.0),
        ("min(3, 1, 2)", 1.0),
        ("max(3, 1, 2)", 3.0),
        ("max(-1)", -1.0),
        ("pi", pi),
        ("2 * PI", 2.0 * pi),
        ("e", e),
        ("e^2", e * e),
        ("sqrt(2)^2", 2.000_000_000_000_000_4),
        ("(((((1)))))", 1.0),
        ("3 × 4 ÷ 2 − 1", 5.0),
        ("-0", 0.0),
        ("1e300", 1e300),
        ("0^0", 1.0),
        ("1^1e300", 1.0),
        ("0.5^10000", 0.0),
    ];
    for (expr, want) in cases {
        let got = evaluate(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(
            (got - want).abs() <= 1e-12 * want.abs().max(1.0),
            "{expr}: got {got}, want {want}"
        );
    }
    // Negative zero is normalised.
    assert!(evaluate("-0").unwrap().is_sign_positive());
}

fn syntax_at(expr: &str) -> usize {
    match evaluate(expr) {
        Err(CalcError::Syntax { position, message }) => {
            assert!(!message.is_empty());
            position
        }
        other => panic!("{expr}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn syntax_errors_carry_positions() {
    assert_eq!(syntax_at(""), 0);
    assert_eq!(syntax_at("   "), 3);
    assert_eq!(syntax_at("2 +"), 3);
    assert_eq!(syntax_at("(1 + 2"), 6);
    assert_eq!(syntax_at("1 + 2)"), 5);
    assert_eq!(syntax_at("1 2"), 2);
    assert_eq!(syntax_at("* 3"), 0);
    assert_eq!(syntax_at("1 $ 2"), 2);
    assert_eq!(syntax_at("1.2.3"), 3);
    assert_eq!(syntax_at("."), 0);
    assert_eq!(syntax_at("12abc"), 2);
    assert_eq!(syntax_at("sqrt()"), 5);
    assert_eq!(syntax_at("sqrt(1, 2)"), 0);
    assert_eq!(syntax_at("min(1,)"), 6);
    assert_eq!(syntax_at("2 ^"), 3);
    assert_eq!(syntax_at("__import__('os').system('ls')"), 11);
}

#[test]
fn every_error_kind() {
    assert_eq!(evaluate("1 / 0"), Err(CalcError::DivisionByZero));
    assert_eq!(evaluate("1 / (2 - 2)"), Err(CalcError::DivisionByZero));
    assert_eq!(evaluate("5 % 0"), Err(CalcError::DivisionByZero));
    assert_eq!(evaluate("0 ^ -1"), Err(CalcError::DivisionByZero));
    assert_eq!(evaluate("1e301"), Err(CalcError::Overflow));
    assert_eq!(evaluate("1e999"), Err(CalcError::Overflow));
    assert_eq!(evaluate("1e200 * 1e200"), Err(CalcError::Overflow));
    assert_eq!(evaluate("exp(1000)"), Err(CalcError::Overflow));
    assert_eq!(evaluate("10^301"), Err(CalcError::Overflow));
    assert_eq!(evaluate("(-10)^301"), Err(CalcError::Overflow));
    assert_eq!(evaluate("2^1e10"), Err(CalcError::Overflow));
    assert_eq!(
        evaluate("foo(1)"),
        Err(CalcError::UnknownFunction("foo".into()))
    );
    assert_eq!(
        evaluate("x + 1"),
        Err(CalcError::UnknownFunction("x".into()))
    );
    assert_eq!(
        evaluate("import os"),
        Err(CalcError::UnknownFunction("import".into()))
    );
    assert!(matches!(evaluate("sqrt(-1)"), Err(CalcError::Domain(_))));
    assert!(matches!(evaluate("ln(0)"), Err(CalcError::Domain(_))));
    assert!(matches!(evaluate("log10(-5)"), Err(CalcError::Domain(_))));
    assert!(matches!(evaluate("(-8)^(1/3)"), Err(CalcError::Domain(_))));
    let long = "1+".repeat(600) + "1";
    assert_eq!(
        evaluate(&long),
        Err(CalcError::TooLong {
            length: 1201,
            max: 1000
        })
    );
    assert_eq!(
        evaluate(&format!("{}1{}", "(".repeat(70), ")".repeat(70))),
        Err(CalcError::TooDeep { max: 64 })
    );
    // Every message is readable.
    for e in [
        CalcError::DivisionByZero,
        CalcError::Overflow,
        CalcError::TooDeep { max: 64 },
        CalcError::Domain("x".into()),
    ] {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn limits_are_configurable() {
    let limits = CalcLimits::default()
        .with_max_len(5)
        .with_max_depth(3)
        .with_max_magnitude(100.0);
    assert_eq!(
        evaluate_with("1+2+3", &limits).unwrap(),
        6.0,
        "exactly at the length limit"
    );
    assert!(matches!(
        evaluate_with("1+2+34", &limits),
        Err(CalcError::TooLong { max: 5, .. })
    ));
    let limits = limits.with_max_len(100);
    assert_eq!(evaluate_with("((1))", &limits).unwrap(), 1.0);
    assert_eq!(
        evaluate_with("(((1)))", &limits),
        Err(CalcError::TooDeep { max: 3 })
    );
    assert_eq!(evaluate_with("99+2", &limits), Err(CalcError::Overflow));
    assert_eq!(evaluate_with("10^3", &limits), Err(CalcError::Overflow));
}

#[test]
fn bombs_fail_fast_with_the_right_error() {
    assert_eq!(evaluate("9^9^9^9"), Err(CalcError::Overflow));
    assert_eq!(evaluate("9**9**9**9"), Err(CalcError::Overflow));
    assert_eq!(evaluate("(9^9)^(9^9)"), Err(CalcError::Overflow));
    let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
    let unlimited_len = CalcLimits::default().with_max_len(usize::MAX);
    assert_eq!(
        evaluate_with(&deep, &unlimited_len),
        Err(CalcError::TooDeep { max: 64 })
    );
    assert_eq!(
        evaluate(&deep),
        Err(CalcError::TooDeep { max: 64 }).or(evaluate(&deep)),
        "with the default length limit, either limit may fire"
    );
    assert!(matches!(evaluate(&deep), Err(CalcError::TooLong { .. })));
    let minus = "-".repeat(10_000) + "1";
    assert_eq!(
        evaluate_with(&minus, &unlimited_len),
        Err(CalcError::TooDeep { max: 64 })
    );
    let tower = vec!["2"; 5_000].join("^");
    assert_eq!(
        evaluate_with(&tower, &unlimited_len),
        Err(CalcError::TooDeep { max: 64 })
    );
    let huge = "1+".repeat(50_000);
    assert_eq!(huge.len(), 100_000);
    assert_eq!(
        evaluate(&huge),
        Err(CalcError::TooLong {
            length: 100_000,
            max: 1000
        })
    );
    let wide = "9".repeat(100_000);
    assert!(matches!(evaluate(&wide), Err(CalcError::TooLong { .. })));
    assert_eq!(
        evaluate_with(&wide, &unlimited_len),
        Err(CalcError::Overflow)
    );
}

#[tokio::test]
async fn the_tool_maps_errors_to_invalid_arguments() {
    let tool = Calculator::new().into_tool();
    assert_eq!(tool.name(), "calculator");
    let p = tool.parameters();
    assert_eq!(p["required"], serde_json::json!(["expression"]));
    assert!(p["properties"]["expression"]["description"]
        .as_str()
        .unwrap()
        .contains("sqrt"));

    let out = tool
        .call(serde_json::json!({"expression": "(2 + 3) * 4"}))
        .await
        .unwrap();
    assert_eq!(out.content, serde_json::json!(20.0));

    for (expr, needle) in [
        ("1/0", "division by zero"),
        ("9^9^9^9", "overflow"),
        ("2 +", "syntax error at character 3"),
        ("sqrt(-1)", "domain"),
        ("nope(1)", "unknown function"),
    ] {
        match tool.call(serde_json::json!({ "expression": expr })).await {
            Err(ToolError::InvalidArguments(m)) => assert!(m.contains(needle), "{expr}: {m}"),
            other => panic!("{expr}: {other:?}"),
        }
    }
    match tool.call(serde_json::json!({"expr": "1"})).await {
        Err(ToolError::InvalidArguments(m)) => assert!(m.contains("expression"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u32..1000).prop_map(|n| n.to_string()),
        Just("1e308".to_string()),
        Just("0".to_string()),
        Just(".5".to_string()),
        Just("9".to_string()),
        Just("2.5e-3".to_string()),
        prop::sample::select(vec![
            "+", "-", "*", "/", "%", "^", "**", "(", ")", ",", "(", ")", "-", "^", "pi", "e",
            "sqrt(", "ln(", "log10(", "min(", "max(", "exp(", "tan(", "round(", "abs(", "x", "1e",
            ".", " ", "×", "é",
        ])
        .prop_map(str::to_string),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn never_panics_on_arbitrary_strings(s in any::<String>()) {
        let _ = evaluate(&s);
    }

    #[test]
    fn never_panics_on_arbitrary_ascii(s in "[ -~]{0,200}") {
        let _ = evaluate(&s);
    }

    #[test]
    fn never_panics_on_token_sequences(tokens in prop::collection::vec(token(), 0..300)) {
        let expr = tokens.concat();
        match evaluate(&expr) {
            Ok(v) => prop_assert!(v.is_finite() && v.abs() <= 1e300),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
        // With no length limit the depth limit still bounds the work.
        let _ = evaluate_with(&expr, &CalcLimits::default().with_max_len(usize::MAX));
    }
}
