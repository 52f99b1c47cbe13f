//! Decoding any column to JSON: PostgreSQL's binary formats of the common types (numbers,
//! text, `numeric`, `json`/`jsonb`, `uuid`, dates and timestamps, `bytea`, enums).

use std::error::Error as StdError;

use serde_json::{Number, Value};
use tokio_postgres::types::{FromSql, Kind, Type};

/// One value of any column type, as JSON.
pub(super) struct Cell(pub(super) Value);

type BoxedError = Box<dyn StdError + Sync + Send>;

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(decode(ty, raw)?))
    }

    fn from_sql_null(_ty: &Type) -> std::result::Result<Self, BoxedError> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }
}

fn decode(ty: &Type, raw: &[u8]) -> std::result::Result<Value, BoxedError> {
    Ok(match *ty {
        Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
        Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
        Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
        Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
        Type::OID => Value::from(u32::from_sql(ty, raw)?),
        Type::FLOAT4 => float(f64::from(f32::from_sql(ty, raw)?)),
        Type::FLOAT8 => float(f64::from_sql(ty, raw)?),
        Type::NUMERIC => numeric(raw)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN | Type::CHAR => {
            Value::String(String::from_utf8_lossy(raw).into_owned())
        }
        Type::JSON => serde_json::from_slice(raw)?,
        Type::JSONB => serde_json::from_slice(raw.get(1..).unwrap_or_default())?,
        Type::UUID => Value::String(uuid(raw)),
        Type::DATE => {
            let days = i32::from_sql(ty, raw)?;
            let (y, m, d) = civil_from_days(i64::from(days) + 10_957);
            Value::String(format!("{y:04}-{m:02}-{d:02}"))
        }
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_sql(ty, raw)?;
            let secs = micros.div_euclid(1_000_000);
            let frac = micros.rem_euclid(1_000_000);
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400) + 10_957);
            let s = secs.rem_euclid(86_400);
            let zone = if *ty == Type::TIMESTAMPTZ { "Z" } else { "" };
            Value::String(format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}{zone}",
                s / 3600,
                s % 3600 / 60,
                s % 60
            ))
        }
        Type::BYTEA => Value::String(format!(
            "\\x{}",
            raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )),
        _ if matches!(ty.kind(), Kind::Enum(_)) => {
            Value::String(String::from_utf8_lossy(raw).into_owned())
        }
        _ => Value::String(format!("<{} value>", ty.name())),
    })
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or_else(|| Value::String(f.to_string()), Value::Number)
}

fn uuid(raw: &[u8]) -> String {
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    if hex.len() == 32 {
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    } else {
        hex
    }
}

/// Decodes PostgreSQL's binary `numeric` (base-10000 digits) into a JSON number when it
/// fits, else its decimal text.
fn numeric(raw: &[u8]) -> std::result::Result<Value, BoxedError> {
    let word = |k: usize| -> std::result::Result<i32, BoxedError> {
        let b = raw.get(2 * k..2 * k + 2).ok_or("truncated numeric")?;
        Ok(i32::from(i16::from_be_bytes([b[0], b[1]])))
    };
    let ndigits = usize::try_from(word(0)?).map_err(|_| "bad numeric")?;
    let weight = word(1)?;
    let sign = word(2)? as u16;
    let dscale = usize::try_from(word(3)?).map_err(|_| "bad numeric")?;
    match sign {
        0xC000 => return Ok(Value::String("NaN".into())),
        0xD000 => return Ok(Value::String("Infinity".into())),
        0xF000 => return Ok(Value::String("-Infinity".into())),
        _ => {}
    }
    let digit = |p: i32| -> std::result::Result<i32, BoxedError> {
        match usize::try_from(p) {
            Ok(p) if p < ndigits => word(4 + p),
            _ => Ok(0),
        }
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        for p in 0..=weight {
            let d = digit(p)?;
            if p == 0 {
                text.push_str(&d.to_string());
            } else {
                text.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut p = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(p)?));
            p += 1;
        }
        frac.truncate(dscale);
        text.push('.');
        text.push_str(&frac);
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    // Up to 15 significant digits survive an f64 exactly; longer values stay text.
    let significant = text
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|c| *c == '0')
        .count();
    match text.parse::<f64>() {
        Ok(f) if significant <= 15 => Ok(float(f)),
        _ => Ok(Value::String(text)),
    }
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
