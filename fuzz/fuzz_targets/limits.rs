//! Limit parsing and window arithmetic (`routerly_core::limits`, and the counters the
//! budget layer keeps with it).
//!
//! Input: three lines (window, scope and time-zone texts), then bytes for an instant, a
//! span, a metric, a value and usage (see [`Input::read`]). Every
//! text parses or is refused, never panics; what parses formats back to itself; and a
//! window that parsing accepts works in every computation the service makes with it at
//! start-up, on each call and in `GET /api/limits` (window bounds, counting, expiry,
//! reset times, alert windows), for any instant from 1970 to 2106.

#![no_main]

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use libfuzzer_sys::fuzz_target;
use routerly_core::limits::{
    self, Amounts, Limit, Metric, Mode, Scope, Window, WindowTotals, calendar_window,
};
use routerly_server::budgets::{alert_window_start, counter_key};
use routerly_server::store::counters::{CounterStore, MemoryCounterStore};

#[derive(Debug)]
struct Input<'a> {
    window: &'a str,
    scope: &'a str,
    zone: &'a str,
    /// Unix seconds of "now".
    now: u32,
    span: u64,
    metric: u8,
    value: u32,
    /// Usage: seconds before now (or after, when negative) and the amount.
    usage: Vec<(i32, u16)>,
}

impl<'a> Input<'a> {
    /// `window\nscope\nzone\n`, then big-endian `now: u32`, `span: u64`, `metric: u8`,
    /// `value: u32`, and `(ago: i32, amount: u16)` pairs; missing numbers are zero.
    fn read(data: &'a [u8]) -> Option<Self> {
        let text_end = data
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .nth(2)
            .map_or(data.len(), |(at, _)| at);
        let text = std::str::from_utf8(&data[..text_end]).ok()?;
        let mut lines = text.splitn(3, '\n');
        let (window, scope, zone) = (
            lines.next()?,
            lines.next().unwrap_or(""),
            lines.next().unwrap_or(""),
        );
        let mut numbers = data.get(text_end + 1..).unwrap_or(&[]).iter().copied();
        let mut take = |count: usize| -> u64 {
            (0..count).fold(0u64, |value, _| {
                (value << 8) | u64::from(numbers.next().unwrap_or(0))
            })
        };
        let now = take(4) as u32;
        let span = take(8);
        let metric = take(1) as u8;
        let value = take(4) as u32;
        let mut usage = Vec::new();
        for _ in 0..64 {
            let ago = take(4) as u32 as i32;
            let amount = take(2) as u16;
            if ago == 0 && amount == 0 {
                break;
            }
            usage.push((ago, amount));
        }
        Some(Input {
            window,
            scope,
            zone,
            now,
            span,
            metric,
            value,
            usage,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::read(data) else {
        return;
    };
    if let Ok(scope) = Scope::parse(input.scope) {
        let text = scope.to_string();
        assert_eq!(
            Scope::parse(&text),
            Ok(scope),
            "scope `{text}` does not read back"
        );
    }
    let span_text = limits::format_span(input.span);
    match limits::parse_span(&span_text) {
        Ok(span) => assert_eq!(span, input.span, "span `{span_text}` reads back"),
        Err(_) => assert!(
            input.span == 0 || input.span > limits::MAX_WINDOW_SECONDS,
            "span `{span_text}` refused"
        ),
    }
    let zone = limits::parse_time_zone(input.zone).unwrap_or(Tz::UTC);
    let Ok(window) = Window::parse(input.window) else {
        return;
    };
    let text = window.to_string();
    assert_eq!(
        Window::parse(&text),
        Ok(window),
        "window `{text}` does not read back"
    );
    let json = serde_json::to_string(&window).expect("a window serializes");
    assert_eq!(
        serde_json::from_str::<Window>(&json).expect("a window deserializes"),
        window
    );
    let _ = window.max_seconds();

    let now = DateTime::<Utc>::from_timestamp(i64::from(input.now), 0).expect("a u32 instant");
    let metric = Metric::ALL[usize::from(input.metric) % Metric::ALL.len()];
    let limit = Limit {
        id: "fuzz".to_owned(),
        scope: Scope::Global,
        metric,
        window,
        value: f64::from(input.value),
        mode: Mode::Extend,
        time_zone: Some(zone.name().to_owned()),
    };
    let key = counter_key(&limit, Tz::UTC);
    if let Window::Calendar(period) = window {
        let (start, end) = calendar_window(period, key.zone, now);
        assert!(
            start <= now && now < end,
            "{window} in {zone}: {now} not in [{start}, {end})"
        );
    }
    let _ = alert_window_start(&key, now);

    let mut totals = WindowTotals::new(window);
    let counters = MemoryCounterStore::new();
    counters.register(&key);
    for (ago, amount) in &input.usage {
        let at = now - chrono::Duration::seconds(i64::from(*ago));
        let amounts = Amounts {
            cost_usd: f64::from(*amount) / 100.0,
            calls: 1.0,
            input_tokens: f64::from(*amount),
            output_tokens: 1.0,
        };
        totals.add(window, key.zone, at, &amounts);
        counters.add_now(at, std::slice::from_ref(&key), &amounts);
    }
    let used = totals.used(window, key.zone, now);
    let needed = 1.0;
    let reset = totals.resets_at(window, key.zone, now, metric, 0.0, needed, limit.value);
    assert!(
        reset >= now || used.get(metric) == 0.0,
        "{window}: resets at {reset}, before {now}"
    );
    let reading = counters.read(now, &key);
    assert_eq!(
        reading.used, used,
        "{window}: the counter store and the totals disagree"
    );
    let _ = counters.resets_at(now, &key, metric, needed, limit.value);
    let mut checkpoint = WindowTotals::new(window);
    checkpoint.merge(&totals);
    assert_eq!(
        checkpoint.used(window, key.zone, now),
        used,
        "{window}: a merge changed the use"
    );
});
