//! A calculator tool: a small arithmetic language, parsed and evaluated by hand.
//!
//! The expression is read by a hand-written recursive-descent parser and evaluated over
//! `f64` as it is parsed. Nothing is ever executed as code: there is no scripting engine,
//! no `eval`, no variables and no user-defined functions (the class of bug behind
//! LangChain's `LLMMathChain` code execution cannot happen here).
//!
//! # Language
//!
//! | syntax | meaning |
//! | --- | --- |
//! | `42`, `3.5`, `.5`, `1e3`, `2.5E-4` | numbers (decimal, scientific notation) |
//! | `+ - * /` | arithmetic (`×`, `÷` and `−` are accepted too) |
//! | `%` | remainder, with the sign of the left operand (`-7 % 3 = -1`) |
//! | `^` or `**` | power, right-associative: `2^3^2 = 2^9 = 512` |
//! | `-x`, `+x` | unary minus/plus, binding looser than `^`: `-2^2 = -4` |
//! | `( … )` | grouping |
//! | `sqrt abs ln log10 sin cos tan exp floor ceil round` | functions of one argument (radians) |
//! | `min(a, b, …)`, `max(a, b, …)` | functions of one or more arguments |
//! | `pi`, `e` | constants |
//!
//! Names are case-insensitive. `round` rounds half away from zero.
//!
//! # Limits
//!
//! [`CalcLimits`] bounds the work one expression can cause: its length (default 1,000
//! characters), its nesting depth (default 64: parentheses, function calls, unary signs and
//! power chains all count) and the magnitude of every intermediate value (anything
//! non-finite or larger than 1e300 in absolute value is [`CalcError::Overflow`]). A power
//! whose result would overflow is refused before it is computed, so `9^9^9^9` fails at once.
//!
//! # Errors and the model
//!
//! Every [`CalcError`] describes a problem with the expression the model wrote, so the
//! [`Calculator`] tool reports all of them as [`ToolError::InvalidArguments`]: the model sees
//! the message (`"division by zero"`, `"syntax error at character 4: …"`) and can correct
//! itself. The calculator never returns [`ToolError::Execution`].
//!
//! ```
//! use catena_tools::{evaluate, CalcError};
//!
//! assert_eq!(evaluate("1 + 2 * 3").unwrap(), 7.0);
//! assert_eq!(evaluate("-2^2").unwrap(), -4.0);
//! assert_eq!(evaluate("max(1, sqrt(16), 3)").unwrap(), 4.0);
//! assert_eq!(evaluate("1 / 0"), Err(CalcError::DivisionByZero));
//! assert_eq!(evaluate("9^9^9^9"), Err(CalcError::Overflow));
//! assert!(matches!(evaluate("2 +"), Err(CalcError::Syntax { .. })));
//! ```

use async_trait::async_trait;
use catena_core::{ToolError, TypedTool};
use schemars::JsonSchema;
use serde::Deserialize;

/// The largest nesting depth [`CalcLimits::with_max_depth`] accepts; bigger values are
/// clamped so that the parser's recursion always fits in a thread's stack.
pub(crate) const MAX_DEPTH_CEILING: usize = 256;

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalcError {
    /// The expression is not well formed.
    #[error("syntax error at character {position}: {message}")]
    Syntax {
        /// Where the problem is, counted in characters from 0.
        position: usize,
        /// What is wrong.
        message: String,
    },
    /// Division or remainder by zero, or zero raised to a negative power.
    #[error("division by zero")]
    DivisionByZero,
    /// A value (final or intermediate) is infinite or larger than the magnitude limit.
    #[error("overflow: a value is too large (limit 1e300)")]
    Overflow,
    /// The expression is longer than the length limit.
    #[error("expression too long: {length} characters (limit {max})")]
    TooLong {
        /// The expression's length in characters.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// The expression nests deeper than the depth limit.
    #[error("expression nested too deeply (limit {max} levels)")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A name that is neither a known function nor a known constant.
    #[error("unknown function or constant `{0}` (known: sqrt, abs, ln, log10, sin, cos, tan, exp, floor, ceil, round, min, max, pi, e)")]
    UnknownFunction(String),
    /// A function applied outside its domain (`sqrt(-1)`, `ln(0)`), or a result that is not
    /// a real number (`(-8)^(1/3)`).
    #[error("domain error: {0}")]
    Domain(String),
}

impl From<CalcError> for ToolError {
    /// Every calculator error is a problem with the expression, so it becomes
    /// [`ToolError::InvalidArguments`].
    fn from(e: CalcError) -> Self {
        ToolError::InvalidArguments(e.to_string())
    }
}

/// Bounds on the work one expression may cause.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CalcLimits {
    /// The longest expression, in characters.
    pub max_len: usize,
    /// The deepest nesting.
    pub max_depth: usize,
    /// The largest absolute value of any result or intermediate.
    pub max_magnitude: f64,
}

impl Default for CalcLimits {
    fn default() -> Self {
        CalcLimits {
            max_len: 1_000,
            max_depth: 64,
            max_magnitude: 1e300,
        }
    }
}

impl CalcLimits {
    /// Sets the longest expression, in characters.
    #[must_use]
    pub fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// Sets the deepest nesting, clamped to `1..=`[`MAX_DEPTH_CEILING`].
    #[must_use]
    pub fn with_max_depth(mut self, max_depth: usize) -> Self {
        self.max_depth = max_depth.clamp(1, MAX_DEPTH_CEILING);
        self
    }

    /// Sets the largest absolute value of any result or intermediate (non-finite or
    /// non-positive values fall back to 1e300).
    #[must_use]
    pub fn with_max_magnitude(mut self, max_magnitude: f64) -> Self {
        self.max_magnitude = if max_magnitude.is_finite() && max_magnitude > 0.0 {
            max_magnitude
        } else {
            1e300
        };
        self
    }
}

/// Evaluates `expr` with the default [`CalcLimits`].
///
/// # Errors
/// A [`CalcError`] describing what is wrong with the expression.
pub fn evaluate(expr: &str) -> Result<f64, CalcError> {
    evaluate_with(expr, &CalcLimits::default())
}

/// Evaluates `expr` within `limits`.
///
/// # Errors
/// A [`CalcError`] describing what is wrong with the expression.
pub fn evaluate_with(expr: &str, limits: &CalcLimits) -> Result<f64, CalcError> {
    // Count at most one character past the limit, so a huge input is rejected in O(limit).
    let length = expr.chars().take(limits.max_len.saturating_add(1)).count();
    if length > limits.max_len {
        return Err(CalcError::TooLong {
            length: expr.chars().count(),
            max: limits.max_len,
        });
    }
    let tokens = lex(expr)?;
    let mut parser = Parser {
        tokens,
        pos: 0,
        depth: 0,
        max_depth: limits.max_depth.clamp(1, MAX_DEPTH_CEILING),
        max_magnitude: if limits.max_magnitude.is_finite() && limits.max_magnitude > 0.0 {
            limits.max_magnitude
        } else {
            1e300
        },
    };
    let value = parser.expr()?;
    let token = parser.peek();
    if token.kind != Kind::End {
        return Err(CalcError::Syntax {
            position: token.position,
            message: format!("unexpected {}", token.kind.describe()),
        });
    }
    // Normalise negative zero, which would print as "-0".
    Ok(if value == 0.0 { 0.0 } else { value })
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Number(f64),
    Ident(String),
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Caret,
    LParen,
    RParen,
    Comma,
    End,
}

impl Kind {
    fn describe(&self) -> String {
        match self {
            Kind::Number(n) => format!("number {n}"),
            Kind::Ident(name) => format!("name `{name}`"),
            Kind::Plus => "`+`".into(),
            Kind::Minus => "`-`".into(),
            Kind::Star => "`*`".into(),
            Kind::Slash => "`/`".into(),
            Kind::Percent => "`%`".into(),
            Kind::Caret => "`^`".into(),
            Kind::LParen => "`(`".into(),
            Kind::RParen => "`)`".into(),
            Kind::Comma => "`,`".into(),
            Kind::End => "end of expression".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Character offset of the token's start.
    position: usize,
}

/// Names longer than this are cut in error messages.
const MAX_NAME_IN_ERROR: usize = 32;

fn lex(expr: &str) -> Result<Vec<Token>, CalcError> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let simple = match c {
            '+' => Some(Kind::Plus),
            '-' | '−' => Some(Kind::Minus),
            '*' | '×' => {
                if c == '*' && chars.get(i + 1) == Some(&'*') {
                    i += 1;
                    Some(Kind::Caret)
                } else {
                    Some(Kind::Star)
                }
            }
            '/' | '÷' => Some(Kind::Slash),
            '%' => Some(Kind::Percent),
            '^' => Some(Kind::Caret),
            '(' => Some(Kind::LParen),
            ')' => Some(Kind::RParen),
            ',' => Some(Kind::Comma),
            _ => None,
        };
        if let Some(kind) = simple {
            tokens.push(Token {
                kind,
                position: start,
            });
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let mut text = String::new();
            while i < chars.len() && chars[i].is_ascii_digit() {
                text.push(chars[i]);
                i += 1;
            }
            if i < chars.len() && chars[i] == '.' {
                text.push('.');
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    text.push(chars[i]);
                    i += 1;
                }
            }
            if !text.chars().any(|d| d.is_ascii_digit()) {
                return Err(CalcError::Syntax {
                    position: start,
                    message: "a number needs at least one digit".into(),
                });
            }
            // An exponent only when `e` is followed by digits (optionally signed), so that
            // `2e` stays "2" followed by the name `e`.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    text.push('e');
                    text.extend(&chars[i + 1..j]);
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        text.push(chars[i]);
                        i += 1;
                    }
                }
            }
            if i < chars.len() && (chars[i] == '.' || chars[i].is_alphanumeric()) {
                return Err(CalcError::Syntax {
                    position: i,
                    message: format!("unexpected `{}` after a number", chars[i]),
                });
            }
            let value: f64 = text.parse().map_err(|_| CalcError::Syntax {
                position: start,
                message: "malformed number".into(),
            })?;
            tokens.push(Token {
                kind: Kind::Number(value),
                position: start,
            });
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut name = String::new();
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                name.push(chars[i]);
                i += 1;
            }
            tokens.push(Token {
                kind: Kind::Ident(name),
                position: start,
            });
            continue;
        }
        return Err(CalcError::Syntax {
            position: start,
            message: format!("unexpected character {c:?}"),
        });
    }
    tokens.push(Token {
        kind: Kind::End,
        position: chars.len(),
    });
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    max_depth: usize,
    max_magnitude: f64,
}

const END: Token = Token {
    kind: Kind::End,
    position: 0,
};

impl Parser {
    fn peek(&self) -> &Token {
        // The lexer always ends with `End`, and `advance` never moves past it.
        self.tokens.get(self.pos).unwrap_or(&END)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    fn check(&self, value: f64) -> Result<f64, CalcError> {
        if value.is_nan() {
            Err(CalcError::Domain("the result is not a real number".into()))
        } else if !value.is_finite() || value.abs() > self.max_magnitude {
            Err(CalcError::Overflow)
        } else {
            Ok(value)
        }
    }

    fn syntax(&self, message: impl Into<String>) -> CalcError {
        CalcError::Syntax {
            position: self.peek().position,
            message: message.into(),
        }
    }

    fn expect(&mut self, kind: &Kind) -> Result<(), CalcError> {
        if &self.peek().kind == kind {
            self.advance();
            Ok(())
        } else {
            let found = self.peek().kind.describe();
            Err(self.syntax(format!("expected {}, found {found}", kind.describe())))
        }
    }

    /// expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, CalcError> {
        let mut acc = self.term()?;
        loop {
            match self.peek().kind {
                Kind::Plus => {
                    self.advance();
                    let rhs = self.term()?;
                    acc = self.check(acc + rhs)?;
                }
                Kind::Minus => {
                    self.advance();
                    let rhs = self.term()?;
                    acc = self.check(acc - rhs)?;
                }
                _ => return Ok(acc),
            }
        }
    }

    /// term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, CalcError> {
        let mut acc = self.unary()?;
        loop {
            match self.peek().kind {
                Kind::Star => {
                    self.advance();
                    let rhs = self.unary()?;
                    acc = self.check(acc * rhs)?;
                }
                Kind::Slash => {
                    self.advance();
                    let rhs = self.unary()?;
                    if rhs == 0.0 {
                        return Err(CalcError::DivisionByZero);
                    }
                    acc = self.check(acc / rhs)?;
                }
                Kind::Percent => {
                    self.advance();
                    let rhs = self.unary()?;
                    if rhs == 0.0 {
                        return Err(CalcError::DivisionByZero);
                    }
                    acc = self.check(acc % rhs)?;
                }
                _ => return Ok(acc),
            }
        }
    }

    /// unary := ('-' | '+') unary | power
    ///
    /// Every recursive path of the grammar passes through here, so this is where the
    /// depth limit is enforced.
    fn unary(&mut self) -> Result<f64, CalcError> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(CalcError::TooDeep {
                max: self.max_depth,
            });
        }
        let result = match self.peek().kind {
            Kind::Minus => {
                self.advance();
                self.unary().map(|v| -v)
            }
            Kind::Plus => {
                self.advance();
                self.unary()
            }
            _ => self.power(),
        };
        self.depth -= 1;
        result
    }

    /// power := primary ('^' unary)?   (right-associative; the exponent may be signed)
    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.primary()?;
        if self.peek().kind != Kind::Caret {
            return Ok(base);
        }
        self.advance();
        let exponent = self.unary()?;
        self.pow(base, exponent)
    }

    fn pow(&self, base: f64, exponent: f64) -> Result<f64, CalcError> {
        if base == 0.0 && exponent < 0.0 {
            return Err(CalcError::DivisionByZero);
        }
        // Guard before computing: |base|^exponent > max  ⇔  exponent·log2|base| > log2(max).
        let abs = base.abs();
        if abs > 0.0 && abs != 1.0 {
            let log = exponent * abs.log2();
            if log > self.max_magnitude.log2() {
                return Err(CalcError::Overflow);
            }
        }
        self.check(base.powf(exponent))
    }

    /// primary := number | '(' expr ')' | name | name '(' expr (',' expr)* ')'
    fn primary(&mut self) -> Result<f64, CalcError> {
        let token = self.advance();
        match token.kind {
            Kind::Number(n) => self.check(n),
            Kind::LParen => {
                let value = self.expr()?;
                self.expect(&Kind::RParen)?;
                Ok(value)
            }
            Kind::Ident(name) => {
                let lower = name.to_lowercase();
                if self.peek().kind == Kind::LParen {
                    self.advance();
                    let mut args = vec![self.expr()?];
                    while self.peek().kind == Kind::Comma {
                        self.advance();
                        args.push(self.expr()?);
                    }
                    self.expect(&Kind::RParen)?;
                    self.call(&lower, &name, token.position, &args)
                } else {
                    match lower.as_str() {
                        "pi" => Ok(std::f64::consts::PI),
                        "e" => Ok(std::f64::consts::E),
                        _ => Err(CalcError::UnknownFunction(short(&name))),
                    }
                }
            }
            Kind::End => Err(CalcError::Syntax {
                position: token.position,
                message: "unexpected end of expression: expected a number, name or `(`".into(),
            }),
            other => Err(CalcError::Syntax {
                position: token.position,
                message: format!(
                    "unexpected {}: expected a number, name or `(`",
                    other.describe()
                ),
            }),
        }
    }

    fn call(
        &self,
        lower: &str,
        name: &str,
        position: usize,
        args: &[f64],
    ) -> Result<f64, CalcError> {
        let arity = |n: usize| -> Result<(), CalcError> {
            if args.len() == n {
                Ok(())
            } else {
                Err(CalcError::Syntax {
                    position,
                    message: format!("{lower} takes {n} argument(s), got {}", args.len()),
                })
            }
        };
        let x = args.first().copied().unwrap_or(0.0);
        let value = match lower {
            "min" => args.iter().copied().fold(f64::INFINITY, f64::min),
            "max" => args.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            "sqrt" => {
                arity(1)?;
                if x < 0.0 {
                    return Err(CalcError::Domain(
                        "sqrt of a negative number is not real".into(),
                    ));
                }
                x.sqrt()
            }
            "ln" | "log10" => {
                arity(1)?;
                if x <= 0.0 {
                    return Err(CalcError::Domain(format!(
                        "{lower} is only defined for positive numbers"
                    )));
                }
                if lower == "ln" {
                    x.ln()
                } else {
                    x.log10()
                }
            }
            "abs" | "sin" | "cos" | "tan" | "exp" | "floor" | "ceil" | "round" => {
                arity(1)?;
                match lower {
                    "abs" => x.abs(),
                    "sin" => x.sin(),
                    "cos" => x.cos(),
                    "tan" => x.tan(),
                    "exp" => x.exp(),
                    "floor" => x.floor(),
                    "ceil" => x.ceil(),
                    _ => x.round(),
                }
            }
            _ => return Err(CalcError::UnknownFunction(short(name))),
        };
        self.check(value)
    }
}

/// `name`, cut to [`MAX_NAME_IN_ERROR`] characters (on a character boundary).
fn short(name: &str) -> String {
    let mut out: String = name.chars().take(MAX_NAME_IN_ERROR).collect();
    if name.chars().nth(MAX_NAME_IN_ERROR).is_some() {
        out.push('…');
    }
    out
}

/// The calculator's arguments.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct CalculatorArgs {
    /// An arithmetic expression, e.g. `(2 + 3) * 4^2 / sqrt(16)`. Supports + - * / % ^,
    /// parentheses, sqrt, abs, ln, log10, sin, cos, tan (radians), exp, floor, ceil, round,
    /// min, max and the constants pi and e.
    pub expression: String,
}

/// The calculator as a tool (name `calculator`); its output is the result as a JSON number.
///
/// ```
/// use catena_core::{Tool, ToolError, TypedTool};
/// use catena_tools::Calculator;
///
/// # futures::executor::block_on(async {
/// let tool = Calculator::new().into_tool();
/// let out = tool.call(serde_json::json!({"expression": "2^10"})).await.unwrap();
/// assert_eq!(out.content, serde_json::json!(1024.0));
/// let err = tool.call(serde_json::json!({"expression": "1/0"})).await.unwrap_err();
/// assert_eq!(err, ToolError::InvalidArguments("division by zero".into()));
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct Calculator {
    limits: CalcLimits,
}

impl Calculator {
    /// A calculator with the default [`CalcLimits`].
    pub fn new() -> Self {
        Calculator::default()
    }

    /// Uses other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: CalcLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &CalcLimits {
        &self.limits
    }
}

#[async_trait]
impl TypedTool for Calculator {
    type Args = CalculatorArgs;
    type Output = f64;

    fn name(&self) -> &str {
        "calculator"
    }

    fn description(&self) -> &str {
        "Evaluates an arithmetic expression exactly as written and returns the number. Use it \
         for any calculation instead of doing arithmetic in your head."
    }

    /// # Errors
    /// [`ToolError::InvalidArguments`] for every [`CalcError`].
    async fn call(&self, args: CalculatorArgs) -> Result<f64, ToolError> {
        let result = evaluate_with(&args.expression, &self.limits);
        if let Err(e) = &result {
            tracing::debug!(error = %e, "calculator rejected an expression");
        }
        Ok(result?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexes_scientific_and_names() {
        let kinds: Vec<Kind> = lex("2e3 + e + .5E-1")
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Number(2000.0),
                Kind::Plus,
                Kind::Ident("e".into()),
                Kind::Plus,
                Kind::Number(0.05),
                Kind::End
            ]
        );
        // No implicit multiplication: a name straight after a number is an error.
        assert!(matches!(
            lex("2e"),
            Err(CalcError::Syntax { position: 1, .. })
        ));
        assert!(matches!(
            lex("2pi"),
            Err(CalcError::Syntax { position: 1, .. })
        ));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        match evaluate("ééé + )") {
            Err(CalcError::UnknownFunction(name)) => assert_eq!(name, "ééé"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            evaluate("1 + é"),
            Err(CalcError::UnknownFunction("é".into()))
        );
        match evaluate("(1 ×× 2)") {
            Err(CalcError::Syntax { position, .. }) => assert_eq!(position, 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_names_are_cut_in_errors() {
        let name = "x".repeat(100);
        match evaluate(&name) {
            Err(CalcError::UnknownFunction(n)) => assert_eq!(n.chars().count(), 33),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn depth_ceiling_is_enforced() {
        let l = CalcLimits::default().with_max_depth(1_000_000);
        assert_eq!(l.max_depth, MAX_DEPTH_CEILING);
        let l = l.with_max_len(10_000);
        let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
        assert_eq!(
            evaluate_with(&deep, &l),
            Err(CalcError::TooDeep {
                max: MAX_DEPTH_CEILING
            })
        );
    }
}
