//! The documented range of every number and duration in the configuration files.
//!
//! The store checks these when it validates a configuration, whether it came through the API
//! or from a hand edit, so a value that validation accepts can never overflow the arithmetic
//! that uses it (window starts, costs, timeouts) and a configuration that loaded once always
//! loads again. README.md ("Roles, secrets and values") lists the same ranges.

use std::ops::RangeInclusive;

use crate::config::{ModelConfig, Pricing, Settings, TimeoutOverrides, Timeouts};
use crate::limits::{Limit, MAX_LIMIT_VALUE};

/// The highest price, in USD per million tokens (the dearest models cost a few hundred).
pub const MAX_PRICE_PER_MILLION: f64 = 10_000.0;
/// The largest context window, and prompt-length threshold of a price tier, in tokens.
pub const MAX_CONTEXT_TOKENS: u64 = 100_000_000;
/// Upstream timeouts, in milliseconds: up to an hour.
pub const TIMEOUT_MS: RangeInclusive<u64> = 1..=3_600_000;
/// The largest request body, in bytes: 1 KiB to 1 GiB.
pub const MAX_BODY_BYTES: RangeInclusive<usize> = 1024..=1 << 30;
/// How long shutdown waits for requests in flight, in seconds.
pub const SHUTDOWN_GRACE_SECONDS: RangeInclusive<u64> = 0..=3600;
/// Output tokens a budget reservation assumes when a request sets none.
pub const DEFAULT_OUTPUT_TOKENS: RangeInclusive<u64> = 1..=10_000_000;
/// Size at which the usage log is rotated, in bytes: 1 MiB to 1 TiB.
pub const USAGE_LOG_ROTATE_BYTES: RangeInclusive<u64> = 1 << 20..=1 << 40;
/// Alert thresholds, in percent of a limit.
pub const ALERT_THRESHOLD_PERCENT: RangeInclusive<u32> = 1..=1000;
/// How many alert thresholds and `env_allow_list` patterns a setting may hold.
pub const MAX_LIST_ENTRIES: usize = 32;

/// The longest id (of a model, project, token, limit, role, channel), in characters.
pub const MAX_ID_CHARS: usize = 128;
/// The longest name, slug, alias, label or email, in characters.
pub const MAX_NAME_CHARS: usize = 254;
/// The most labels a token, or aliases a project model, may carry.
pub const MAX_LIST_ITEMS: usize = 64;

/// Checks the length of an identifier or name (`max` characters).
pub fn check_length(field: &str, text: &str, max: usize) -> Result<(), OutOfRange> {
    let length = text.chars().count();
    if length <= max {
        Ok(())
    } else {
        Err(out_of_range(
            field,
            format!("`{field}` has {length} characters; at most {max} are allowed"),
        ))
    }
}

/// Checks a list of short texts: at most [`MAX_LIST_ITEMS`], each at most
/// [`MAX_NAME_CHARS`] characters.
pub fn check_list(field: &str, items: &[String]) -> Result<(), OutOfRange> {
    if items.len() > MAX_LIST_ITEMS {
        return Err(out_of_range(
            field,
            format!(
                "`{field}` has {} entries; at most {MAX_LIST_ITEMS} are allowed",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .try_for_each(|item| check_length(field, item, MAX_NAME_CHARS))
}

/// A value out of its range: the field (a dotted path inside its entry) and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// Such as `pricing.input` or `timeouts.connect_ms`.
    pub field: String,
    /// What is wrong, with the allowed range.
    pub message: String,
}

fn out_of_range(field: &str, message: String) -> OutOfRange {
    OutOfRange {
        field: field.to_owned(),
        message,
    }
}

fn check_u64(field: &str, value: u64, range: &RangeInclusive<u64>) -> Result<(), OutOfRange> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(
            field,
            format!(
                "`{field}` is {value}; it must be between {} and {}",
                range.start(),
                range.end()
            ),
        ))
    }
}

fn check_price(field: &str, price: f64) -> Result<(), OutOfRange> {
    if price.is_finite() && (0.0..=MAX_PRICE_PER_MILLION).contains(&price) {
        Ok(())
    } else {
        Err(out_of_range(
            field,
            format!(
                "`{field}` is {price}; a price is between 0 and {MAX_PRICE_PER_MILLION} USD per million tokens"
            ),
        ))
    }
}

/// Checks every price of a model.
pub fn check_pricing(pricing: &Pricing) -> Result<(), OutOfRange> {
    check_price("pricing.input", pricing.input)?;
    check_price("pricing.output", pricing.output)?;
    if let Some(price) = pricing.cached_input {
        check_price("pricing.cached_input", price)?;
    }
    if let Some(price) = pricing.cache_write {
        check_price("pricing.cache_write", price)?;
    }
    if let Some(tier) = &pricing.long_context {
        check_u64(
            "pricing.long_context.above_input_tokens",
            tier.above_input_tokens,
            &(0..=MAX_CONTEXT_TOKENS),
        )?;
        check_price("pricing.long_context.input", tier.input)?;
        check_price("pricing.long_context.output", tier.output)?;
        if let Some(price) = tier.cached_input {
            check_price("pricing.long_context.cached_input", price)?;
        }
        if let Some(price) = tier.cache_write {
            check_price("pricing.long_context.cache_write", price)?;
        }
    }
    Ok(())
}

/// Checks timeout overrides (of a model or a project).
pub fn check_timeout_overrides(timeouts: &TimeoutOverrides) -> Result<(), OutOfRange> {
    for (field, value) in [
        ("timeouts.connect_ms", timeouts.connect_ms),
        ("timeouts.first_token_ms", timeouts.first_token_ms),
        ("timeouts.idle_ms", timeouts.idle_ms),
    ] {
        if let Some(value) = value {
            check_u64(field, value, &TIMEOUT_MS)?;
        }
    }
    Ok(())
}

fn check_timeouts(timeouts: &Timeouts) -> Result<(), OutOfRange> {
    check_timeout_overrides(&TimeoutOverrides {
        connect_ms: Some(timeouts.connect_ms),
        first_token_ms: Some(timeouts.first_token_ms),
        idle_ms: Some(timeouts.idle_ms),
    })
}

/// Checks a model's prices, context window and timeouts.
pub fn check_model(model: &ModelConfig) -> Result<(), OutOfRange> {
    check_pricing(&model.pricing)?;
    if let Some(window) = model.context_window {
        check_u64("context_window", window, &(1..=MAX_CONTEXT_TOKENS))?;
    }
    check_timeout_overrides(&model.timeouts)
}

/// Checks a limit's value (its window was checked when it was parsed: see
/// [`crate::limits::MAX_WINDOW_SECONDS`]).
pub fn check_limit(limit: &Limit) -> Result<(), OutOfRange> {
    check_limit_value(limit.value)
}

/// Checks the value of a limit.
pub fn check_limit_value(value: f64) -> Result<(), OutOfRange> {
    if value.is_finite() && (0.0..=MAX_LIMIT_VALUE).contains(&value) {
        Ok(())
    } else {
        Err(out_of_range(
            "value",
            format!("`value` is {value}; a limit's value is between 0 and {MAX_LIMIT_VALUE:e}"),
        ))
    }
}

/// Checks every number in the settings.
pub fn check_settings(settings: &Settings) -> Result<(), OutOfRange> {
    if !MAX_BODY_BYTES.contains(&settings.max_body_bytes) {
        return Err(out_of_range(
            "max_body_bytes",
            format!(
                "`max_body_bytes` is {}; it must be between {} and {}",
                settings.max_body_bytes,
                MAX_BODY_BYTES.start(),
                MAX_BODY_BYTES.end()
            ),
        ));
    }
    check_timeouts(&settings.timeouts)?;
    check_u64(
        "shutdown_grace_seconds",
        settings.shutdown_grace_seconds,
        &SHUTDOWN_GRACE_SECONDS,
    )?;
    check_u64(
        "budget_default_output_tokens",
        settings.budget_default_output_tokens,
        &DEFAULT_OUTPUT_TOKENS,
    )?;
    check_u64(
        "usage_log_rotate_bytes",
        settings.usage_log_rotate_bytes,
        &USAGE_LOG_ROTATE_BYTES,
    )?;
    if settings.alert_thresholds.len() > MAX_LIST_ENTRIES {
        return Err(out_of_range(
            "alert_thresholds",
            format!("at most {MAX_LIST_ENTRIES} alert thresholds"),
        ));
    }
    if let Some(threshold) = settings
        .alert_thresholds
        .iter()
        .find(|threshold| !ALERT_THRESHOLD_PERCENT.contains(threshold))
    {
        return Err(out_of_range(
            "alert_thresholds",
            format!("threshold {threshold} % is out of range (1 to 1000)"),
        ));
    }
    if let Some(days) = settings.usage_retention_days {
        check_u64("usage_retention_days", u64::from(days), &(1..=36_500))?;
    }
    if let Some(days) = settings.usage_compress_after_days {
        check_u64("usage_compress_after_days", u64::from(days), &(0..=36_500))?;
    }
    check_u64(
        "usage_hourly_rollup_days",
        u64::from(settings.usage_hourly_rollup_days),
        &(1..=366),
    )?;
    if settings.env_allow_list.len() > MAX_LIST_ENTRIES {
        return Err(out_of_range(
            "env_allow_list",
            format!("at most {MAX_LIST_ENTRIES} patterns"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_WINDOW_SECONDS, Window};

    #[test]
    fn prices_are_accepted_up_to_the_ceiling_and_refused_beyond() {
        let mut pricing = Pricing {
            input: MAX_PRICE_PER_MILLION,
            output: 0.0,
            ..Pricing::default()
        };
        assert_eq!(check_pricing(&pricing), Ok(()));
        for bad in [
            MAX_PRICE_PER_MILLION * (1.0 + f64::EPSILON),
            1.7e308,
            f64::INFINITY,
            f64::NAN,
            -0.01,
        ] {
            pricing.input = bad;
            let error = check_pricing(&pricing).expect_err("out of range");
            assert_eq!(error.field, "pricing.input", "{bad}");
        }
        pricing.input = 1.0;
        pricing.cache_write = Some(1e308);
        assert_eq!(
            check_pricing(&pricing).expect_err("cache write").field,
            "pricing.cache_write"
        );
    }

    #[test]
    fn limit_values_and_windows_have_bounds() {
        assert_eq!(check_limit_value(MAX_LIMIT_VALUE), Ok(()));
        assert_eq!(check_limit_value(0.0), Ok(()));
        for bad in [MAX_LIMIT_VALUE * 1.001, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(check_limit_value(bad).expect_err("refused").field, "value");
        }
        let longest = format!("{}d", MAX_WINDOW_SECONDS / 86_400);
        assert_eq!(
            Window::parse(&longest),
            Ok(Window::Rolling {
                seconds: MAX_WINDOW_SECONDS
            })
        );
        let beyond = format!("{}s", MAX_WINDOW_SECONDS + 1);
        let error = Window::parse(&beyond).expect_err("too long");
        assert!(error.contains("at most 1830d"), "{error}");
        assert!(Window::parse("100000000d").is_err());
        assert!(Window::parse("99999999999999999999d").is_err());
    }

    #[test]
    fn settings_ranges_name_the_field() {
        assert_eq!(check_settings(&Settings::default()), Ok(()));
        let mut settings = Settings::default();
        settings.timeouts.idle_ms = 0;
        assert_eq!(
            check_settings(&settings).expect_err("zero").field,
            "timeouts.idle_ms"
        );
        let settings = Settings {
            max_body_bytes: 10,
            ..Settings::default()
        };
        assert_eq!(
            check_settings(&settings).expect_err("tiny").field,
            "max_body_bytes"
        );
        let settings = Settings {
            usage_log_rotate_bytes: u64::MAX,
            ..Settings::default()
        };
        assert_eq!(
            check_settings(&settings).expect_err("huge").field,
            "usage_log_rotate_bytes"
        );
    }
}
