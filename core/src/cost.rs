//! What a model call cost: a price table the user supplies turns [`Usage`] into money.
//!
//! Prices change and differ by contract, so Catena ships none: the table is yours, in TOML,
//! with the date you read the prices (`as_of`) and how long you trust them (`max_age_days`).
//! A table older than that is never used silently: [`PriceTable::from_toml_at`] fails, or
//! only warns when you ask for it with `stale = "warn"`. A model missing from the table has
//! no cost ([`PriceTable::cost`] returns `None`), and the decorators that meter cost log it
//! once.
//!
//! ```
//! use catena_core::{PriceTable, Usage};
//!
//! let table = PriceTable::from_toml_at(r#"
//!     as_of = "2026-11-20"        # when these prices were read from the providers' pages
//!     max_age_days = 90
//!     currency = "USD"
//!
//!     [models."gpt-4.1-mini"]     # dollars per million tokens
//!     input = 0.40
//!     cached_input = 0.10
//!     output = 1.60
//!
//!     [models."claude-sonnet-4-5"]
//!     input = 3.00
//!     cached_input = 0.30
//!     cache_write = 3.75
//!     output = 15.00
//! "#, "2026-12-04").unwrap();
//!
//! // Dated snapshots cost as their model: "gpt-4.1-mini-2025-04-14" as "gpt-4.1-mini".
//! let usage = Usage::new(10_000, 1_000).with_cached_input_tokens(8_000);
//! let cost = table.cost("gpt-4.1-mini-2025-04-14", &usage).unwrap();
//! // 2,000 × 0.40 + 8,000 × 0.10 + 1,000 × 1.60, per million
//! assert!((cost.amount - 0.0032).abs() < 1e-12);
//! assert_eq!(cost.currency, "USD");
//! assert!(table.cost("unknown-model", &usage).is_none());
//! ```

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::message::Usage;

/// Prices of one model, per million tokens, in the table's currency.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ModelPrice {
    /// Prompt tokens not served from a cache.
    pub input: f64,
    /// Prompt tokens read from the provider's cache; `input` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the cache (Anthropic); `input` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// Answer tokens.
    pub output: f64,
    /// Reasoning tokens (a part of the output); `output` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<f64>,
}

impl ModelPrice {
    /// A price with input and output rates; the others default to them.
    pub fn new(input: f64, output: f64) -> Self {
        ModelPrice {
            input,
            output,
            ..Default::default()
        }
    }

    /// Sets the cached-input rate.
    #[must_use]
    pub fn with_cached_input(mut self, rate: f64) -> Self {
        self.cached_input = Some(rate);
        self
    }

    /// Sets the cache-write rate.
    #[must_use]
    pub fn with_cache_write(mut self, rate: f64) -> Self {
        self.cache_write = Some(rate);
        self
    }

    /// Sets the reasoning rate.
    #[must_use]
    pub fn with_reasoning(mut self, rate: f64) -> Self {
        self.reasoning = Some(rate);
        self
    }

    /// The cost of `usage` at these prices, in the table's currency.
    ///
    /// Input tokens are split into cache reads, cache writes and the rest; output tokens
    /// into reasoning and the rest (providers count both inside their totals).
    pub fn cost_of(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_input_tokens.unwrap_or(0);
        let written = usage.cache_creation_input_tokens.unwrap_or(0);
        let plain_input = usage
            .input_tokens
            .saturating_sub(cached)
            .saturating_sub(written);
        let reasoning = usage.reasoning_tokens.unwrap_or(0).min(usage.output_tokens);
        let plain_output = usage.output_tokens - reasoning;
        let per_million = plain_input as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + written as f64 * self.cache_write.unwrap_or(self.input)
            + plain_output as f64 * self.output
            + reasoning as f64 * self.reasoning.unwrap_or(self.output);
        per_million / 1_000_000.0
    }

    fn check(&self, model: &str) -> Result<()> {
        let rates = [
            Some(self.input),
            self.cached_input,
            self.cache_write,
            Some(self.output),
            self.reasoning,
        ];
        if rates
            .into_iter()
            .flatten()
            .any(|r| !r.is_finite() || r < 0.0)
        {
            return Err(Error::invalid_config(format!(
                "price table: model `{model}` has a negative or non-finite price"
            )));
        }
        Ok(())
    }
}

/// An amount of money.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// The amount, in `currency`.
    pub amount: f64,
    /// The currency code of the table it came from (`"USD"`).
    pub currency: String,
}

/// What to do with a table older than its `max_age_days`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StalePolicy {
    /// Refuse to load it (the default).
    #[default]
    Fail,
    /// Load it and log a warning.
    Warn,
}

/// Model prices the user supplies, with the date they were read.
///
/// Model ids match exactly, or as a dated snapshot of an entry (`gpt-4.1-mini-2025-04-14`
/// uses `gpt-4.1-mini`'s price; `o1-pro` never uses `o1`'s). The TOML: `as_of = "YYYY-MM-DD"`,
/// `max_age_days` (90), `stale` (`"fail"` or `"warn"`), `currency` (`"USD"`), and a
/// `[models."<id>"]` table per model with `input`, `output` and optionally `cached_input`,
/// `cache_write`, `reasoning`, in the currency per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PriceTable {
    /// The day these prices were read, `YYYY-MM-DD`.
    pub as_of: String,
    /// How many days after `as_of` the table may be used (default 90).
    #[serde(default = "default_max_age")]
    pub max_age_days: u32,
    /// What to do when the table is older than that.
    #[serde(default)]
    pub stale: StalePolicy,
    /// The currency of every price (default `"USD"`).
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Prices per model id.
    #[serde(default)]
    pub models: BTreeMap<String, ModelPrice>,
}

fn default_max_age() -> u32 {
    90
}

fn default_currency() -> String {
    "USD".to_owned()
}

impl PriceTable {
    /// An empty table dated `as_of` (`YYYY-MM-DD`), to fill with [`with_model`](Self::with_model).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `as_of` is not a date.
    pub fn new(as_of: impl Into<String>) -> Result<Self> {
        let as_of = as_of.into();
        parse_day(&as_of)?;
        Ok(PriceTable {
            as_of,
            max_age_days: default_max_age(),
            stale: StalePolicy::Fail,
            currency: default_currency(),
            models: BTreeMap::new(),
        })
    }

    /// Adds (or replaces) a model's price.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.models.insert(model.into(), price);
        self
    }

    /// Parses a TOML table and checks its age against today.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a malformed table, a bad date, a negative price, or a
    /// table older than `max_age_days` (unless `stale = "warn"`).
    pub fn from_toml(text: &str) -> Result<Self> {
        Self::from_toml_at(text, &today())
    }

    /// As [`from_toml`](Self::from_toml), with "today" given (`YYYY-MM-DD`).
    ///
    /// # Errors
    /// As for [`from_toml`](Self::from_toml).
    pub fn from_toml_at(text: &str, today: &str) -> Result<Self> {
        let table: PriceTable = toml::from_str(text)
            .map_err(|e| Error::invalid_config(format!("price table: {}", e.message())))?;
        for (model, price) in &table.models {
            price.check(model)?;
        }
        let age = table.age_days(today)?;
        if age > i64::from(table.max_age_days) {
            let msg = format!(
                "price table dated {} is {age} days old, more than its max_age_days = {}: \
                 check the providers' prices and update `as_of`",
                table.as_of, table.max_age_days
            );
            match table.stale {
                StalePolicy::Fail => return Err(Error::invalid_config(msg)),
                StalePolicy::Warn => tracing::warn!("{msg}"),
            }
        }
        Ok(table)
    }

    /// Reads and parses a TOML file.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; otherwise as for
    /// [`from_toml`](Self::from_toml).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("reading price table {}", path.display()), e))?;
        Self::from_toml(&text)
    }

    /// How many days old the table is on `today` (`YYYY-MM-DD`); negative when dated later.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when either date is malformed.
    pub fn age_days(&self, today: &str) -> Result<i64> {
        Ok(parse_day(today)? - parse_day(&self.as_of)?)
    }

    /// The price of `model`: an exact entry, or an entry followed only by a snapshot suffix
    /// (`-2025-04-14`, `-20250414`, `-latest`, `@20250514`): `gpt-4.1-mini-2025-04-14` costs
    /// as `gpt-4.1-mini`, but `o1-pro` never costs as `o1` (another model, another price).
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(p);
        }
        self.models
            .iter()
            .filter(|(name, _)| {
                model
                    .strip_prefix(name.as_str())
                    .is_some_and(is_snapshot_suffix)
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| p)
    }

    /// The cost of `usage` on `model`, or `None` when the table has no price for it.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<Cost> {
        self.price(model).map(|p| Cost {
            amount: p.cost_of(usage),
            currency: self.currency.clone(),
        })
    }
}

/// `-YYYY-MM-DD`, `-YYYYMMDD`, `-latest`, or the same after `@` (Vertex AI's form).
fn is_snapshot_suffix(rest: &str) -> bool {
    let Some(rest) = rest.strip_prefix('-').or_else(|| rest.strip_prefix('@')) else {
        return false;
    };
    if rest == "latest" {
        return true;
    }
    let digits: String = rest.chars().filter(|c| *c != '-').collect();
    let dashes_ok =
        rest.len() == 8 || (rest.len() == 10 && &rest[4..5] == "-" && &rest[7..8] == "-");
    digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()) && dashes_ok
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let days = i64::try_from(days).unwrap_or(0);
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn parse_day(day: &str) -> Result<i64> {
    let bad = || Error::invalid_config(format!("`{day}` is not a date (YYYY-MM-DD)"));
    let mut parts = day.trim().splitn(3, '-');
    let mut next = || -> Result<i64> {
        parts
            .next()
            .and_then(|p| p.parse::<i64>().ok())
            .ok_or_else(bad)
    };
    let (y, m, d) = (next()?, next()?, next()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return Err(bad());
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
        as_of = "2026-11-20"
        [models."claude-sonnet-4-5"]
        input = 3.0
        cached_input = 0.3
        cache_write = 3.75
        output = 15.0
        [models."o4-mini"]
        input = 1.1
        output = 4.4
        reasoning = 4.4
        [models."o4"]
        input = 9.0
        output = 9.0
    "#;

    #[test]
    fn cache_reads_writes_and_reasoning_are_priced_apart() {
        let t = PriceTable::from_toml_at(TABLE, "2026-12-04").unwrap();
        let u = Usage::new(1_000_000, 100_000)
            .with_cached_input_tokens(500_000)
            .with_cache_creation_input_tokens(100_000);
        let c = t.cost("claude-sonnet-4-5", &u).unwrap().amount;
        // 400k × 3 + 500k × 0.3 + 100k × 3.75 + 100k × 15, per million
        assert!((c - (1.2 + 0.15 + 0.375 + 1.5)).abs() < 1e-9, "{c}");
        let r = Usage::new(0, 1_000_000).with_reasoning_tokens(2_000_000);
        assert!((t.cost("o4-mini", &r).unwrap().amount - 4.4).abs() < 1e-9);
        // Snapshots cost as their model; other models never borrow a price.
        assert!((t.cost("o4-mini-2025-04-16", &r).unwrap().amount - 4.4).abs() < 1e-9);
        assert!((t.cost("o4-20250416", &r).unwrap().amount - 9.0).abs() < 1e-9);
        assert!((t.cost("o4-latest", &r).unwrap().amount - 9.0).abs() < 1e-9);
        assert!((t.cost("claude-sonnet-4-5@20250929", &u).unwrap().amount) > 0.0);
        assert!(t.cost("o4mini", &r).is_none());
        assert!(t.cost("o4-pro", &r).is_none(), "o4-pro is not o4");
        assert!(t.cost("o4-mini-high", &r).is_none());
        assert!(t.cost("o4-2025", &r).is_none());
    }

    #[test]
    fn a_stale_table_fails_unless_told_to_warn() {
        let err = PriceTable::from_toml_at(TABLE, "2027-03-01").unwrap_err();
        assert!(err.to_string().contains("101 days old"), "{err}");
        let warn = format!("stale = \"warn\"\n{TABLE}");
        assert!(PriceTable::from_toml_at(&warn, "2027-03-01").is_ok());
    }

    #[test]
    fn malformed_tables_are_typed_errors() {
        for bad in [
            "as_of = \"2026-13-01\"",
            "as_of = \"yesterday\"",
            "as_of = \"2026-11-01\"\n[models.x]\ninput = -1.0\noutput = 1.0",
            "as_of = \"2026-11-01\"\n[models.x]\ninput = 1.0",
            "as_of = \"2026-11-01\"\n[models.x]\ninput = 1.0\noutput = 1.0\nouptut = 2.0",
            "as_of = \"2026-11-01\"\nmodels = 3",
        ] {
            let err = PriceTable::from_toml_at(bad, "2026-11-02").unwrap_err();
            assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn today_is_a_date() {
        let t = today();
        assert!(
            parse_day(&t).unwrap() > parse_day("2026-01-01").unwrap(),
            "{t}"
        );
        assert_eq!(parse_day("1970-01-01").unwrap(), 0);
        assert_eq!(parse_day("2000-03-01").unwrap(), 11_017);
    }
}
