//! The parsers of option values that clap does not know: sizes and shares.

/// A size in bytes: a number with an optional unit (B, KiB, MiB, GiB, TiB; KB, MB, GB, TB
/// as powers of 1000).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; expected a number and a unit, as 3GiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kib" | "k" => 1024.0,
        "mib" | "m" => 1024.0 * 1024.0,
        "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        "tib" | "t" => 1024f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => {
            return Err(format!(
            "unknown unit {other:?} in {text:?}; expected B, KiB, MiB, GiB, TiB, KB, MB, GB or TB"
        ))
        }
    };
    let bytes = number * factor;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!(
            "{text:?} is not a usable size; expected at least 1 byte"
        ));
    }
    Ok(bytes as u64)
}

/// A share typed as a fraction ("0.02") or a percentage ("2%"), in [0, 1].
pub(super) fn parse_share(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.trim().strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (text.trim(), 1.0),
    };
    let value = number
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("expected a share such as 0.02 or 2%, got {text:?}"))?
        / scale;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "expected a share between 0 and 100 %, got {text:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_share};

    #[test]
    fn sizes_parse_with_their_units() {
        assert_eq!(parse_bytes("3GiB"), Ok(3 << 30));
        assert_eq!(parse_bytes("512 MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("3 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("GiB").is_err());
    }

    #[test]
    fn shares_parse_as_fractions_or_percentages() {
        assert_eq!(parse_share("0.02"), Ok(0.02));
        assert_eq!(parse_share("2%"), Ok(0.02));
        assert_eq!(parse_share(" 50 % "), Ok(0.5));
        assert!(parse_share("150%").is_err());
        assert!(parse_share("-1").is_err());
        assert!(parse_share("two").is_err());
    }
}
