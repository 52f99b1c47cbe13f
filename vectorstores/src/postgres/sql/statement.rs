//! Splitting the model's SQL: exactly one statement is allowed.

use catena_core::{Error, Result};

/// The one statement in `sql`, without its trailing `;`.
///
/// # Errors
/// [`Error::InvalidInput`] for empty text or more than one statement.
pub(crate) fn single_statement(sql: &str) -> Result<&str> {
    #[derive(PartialEq)]
    enum State {
        Normal,
        Single { escapes: bool },
        Double,
        Line,
        Block(usize),
        Dollar(String),
    }
    let bytes = sql.as_bytes();
    let mut state = State::Normal;
    let mut i = 0;
    let mut end = None;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match &mut state {
            State::Normal => match b {
                b'\'' => {
                    let escapes = i > 0 && matches!(bytes[i - 1], b'e' | b'E');
                    state = State::Single { escapes };
                }
                b'"' => state = State::Double,
                b'-' if next == Some(b'-') => {
                    state = State::Line;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::Block(1);
                    i += 1;
                }
                b'$' if !(i > 0
                    && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')) =>
                {
                    // `$tag$` or `$$` opens a dollar quote; `$1` is a parameter.
                    let rest = &sql[i + 1..];
                    if let Some(close) = rest.find('$') {
                        let tag = &rest[..close];
                        let valid = tag.chars().enumerate().all(|(k, c)| {
                            c == '_' || c.is_alphabetic() || (k > 0 && c.is_ascii_digit())
                        });
                        if valid {
                            state = State::Dollar(tag.to_owned());
                            i += close + 1;
                        }
                    }
                }
                b';' => {
                    end = Some(i);
                    break;
                }
                _ => {}
            },
            State::Single { escapes } => {
                if *escapes && b == b'\\' {
                    i += 1;
                } else if b == b'\'' {
                    if next == Some(b'\'') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Double => {
                if b == b'"' {
                    if next == Some(b'"') {
                        i += 1;
                    } else {
                        state = State::Normal;
                    }
                }
            }
            State::Line => {
                if b == b'\n' {
                    state = State::Normal;
                }
            }
            State::Block(depth) => {
                if b == b'*' && next == Some(b'/') {
                    *depth -= 1;
                    i += 1;
                    if *depth == 0 {
                        state = State::Normal;
                    }
                } else if b == b'/' && next == Some(b'*') {
                    *depth += 1;
                    i += 1;
                }
            }
            State::Dollar(tag) => {
                // Compare bytes: `i` may sit inside a multi-byte character here, where
                // slicing the `str` would panic.
                let closing = format!("${tag}$");
                if bytes[i..].starts_with(closing.as_bytes()) {
                    i += closing.len() - 1;
                    state = State::Normal;
                }
            }
        }
        i += 1;
    }
    let statement = match end {
        Some(end) => {
            if !sql[end..].chars().all(|c| c == ';' || c.is_whitespace()) {
                return Err(Error::invalid_input(
                    "the SQL holds more than one statement; only one is allowed",
                ));
            }
            &sql[..end]
        }
        None => sql,
    };
    let statement = statement.trim();
    if statement.is_empty() {
        return Err(Error::invalid_input("the SQL is empty"));
    }
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_outside_quotes_and_comments() {
        assert_eq!(single_statement("SELECT 1;").unwrap(), "SELECT 1");
        assert_eq!(single_statement(" SELECT ';' ; ").unwrap(), "SELECT ';'");
        assert_eq!(
            single_statement("SELECT $$a;b$$").unwrap(),
            "SELECT $$a;b$$"
        );
        assert_eq!(
            single_statement("SELECT $t$;$t$").unwrap(),
            "SELECT $t$;$t$"
        );
        assert_eq!(
            single_statement("SELECT \"a;b\" -- x;\n").unwrap(),
            "SELECT \"a;b\" -- x;"
        );
        assert_eq!(
            single_statement("SELECT /* ; */ 1").unwrap(),
            "SELECT /* ; */ 1"
        );
        assert_eq!(
            single_statement("SELECT E'\\';' ").unwrap(),
            "SELECT E'\\';'"
        );
        assert!(single_statement("SELECT 1; DROP TABLE t").is_err());
        assert!(single_statement("SELECT 'it''s'; DELETE FROM t").is_err());
        assert!(single_statement(" ; ").is_err());
    }

    #[test]
    fn multibyte_text_inside_dollar_quotes() {
        assert_eq!(
            single_statement("SELECT $$Zürich$$").unwrap(),
            "SELECT $$Zürich$$"
        );
        assert_eq!(
            single_statement("SELECT $ü$a;ü$ü$;").unwrap(),
            "SELECT $ü$a;ü$ü$"
        );
        assert!(single_statement("SELECT $$東京$$; SELECT 1").is_err());
    }

    /// Pieces the generator glues together: the lexer's special characters and multi-byte
    /// text, so quotes, dollar tags and comments open and close at awkward places.
    const PIECES: &[&str] = &[
        "$$", "$", "$t$", "$ü$", "$_1$", "'", "''", "\"", "E'", "\\", "--", "\n", "/*", "*/", ";",
        " ", "SELECT ", "ü", "Zürich", "東京", "🚀", "e\u{301}", "a", "1", "-", "/", "*",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn never_panics_on_arbitrary_text(sql in "\\PC*") {
            let _ = single_statement(&sql);
        }

        #[test]
        fn never_panics_on_sql_like_text(
            picks in proptest::collection::vec(0..PIECES.len(), 0..40),
            noise in "\\PC{0,8}",
        ) {
            let mut sql: String = picks.iter().map(|&k| PIECES[k]).collect();
            sql.push_str(&noise);
            if let Ok(statement) = single_statement(&sql) {
                // What comes back is a non-empty part of the input.
                proptest::prop_assert!(!statement.is_empty());
                proptest::prop_assert!(sql.contains(statement));
            }
        }
    }
}
