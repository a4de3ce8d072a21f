//! Config loading: each config file's parse and the cross-file validation that
//! `ConfigStore::open` and every reload run, over a small valid home.
//!
//! Input: a selector byte (which of the six files) and that file's contents; the other five
//! are the base home in `fuzz/base`. Any contents are refused with an error naming the file,
//! never a panic. A configuration that validation accepts must load: written back as the
//! store writes it, it reads and validates to the same configuration, and every limit's
//! window works in the arithmetic the budget layer runs at start-up and on `GET /api/limits`.

#![no_main]

use std::path::Path;

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use routerly_core::limits::{self, Amounts, WindowTotals};
use routerly_server::budgets::{alert_window_start, counter_key};
use routerly_server::store::files;
use routerly_server::store::counters::{CounterStore, MemoryCounterStore};
use routerly_server::store::{ConfigKind, Draft, MasterKey, Snapshot};

const BASE: [(ConfigKind, &str); 6] = [
    (ConfigKind::Settings, include_str!("../base/settings.json")),
    (ConfigKind::Models, include_str!("../base/models.json")),
    (ConfigKind::Projects, include_str!("../base/projects.json")),
    (ConfigKind::Users, include_str!("../base/users.json")),
    (ConfigKind::Roles, include_str!("../base/roles.json")),
    (ConfigKind::Limits, include_str!("../base/limits.json")),
];

/// Parses `bytes` as the config file `kind` into `draft`, as the store does.
fn parse_into(draft: &mut Draft, kind: ConfigKind, bytes: &[u8]) -> Result<(), String> {
    let path = Path::new("config").join(kind.file_name());
    let error = |error: files::ConfigFileError| error.to_string();
    match kind {
        ConfigKind::Settings => draft.settings = files::parse_json(&path, bytes).map_err(error)?,
        ConfigKind::Models => draft.models = files::parse_json(&path, bytes).map_err(error)?,
        ConfigKind::Projects => draft.projects = files::parse_json(&path, bytes).map_err(error)?,
        ConfigKind::Users => draft.users = files::parse_json(&path, bytes).map_err(error)?,
        ConfigKind::Roles => draft.roles = files::parse_json(&path, bytes).map_err(error)?,
        ConfigKind::Limits => draft.limits = files::parse_json(&path, bytes).map_err(error)?,
    }
    Ok(())
}

/// `draft`'s file `kind` as the store writes it.
fn written(draft: &Draft, kind: ConfigKind) -> Vec<u8> {
    let bytes = match kind {
        ConfigKind::Settings => files::to_pretty_json(&draft.settings),
        ConfigKind::Models => files::to_pretty_json(&draft.models),
        ConfigKind::Projects => files::to_pretty_json(&draft.projects),
        ConfigKind::Users => files::to_pretty_json(&draft.users),
        ConfigKind::Roles => files::to_pretty_json(&draft.roles),
        ConfigKind::Limits => files::to_pretty_json(&draft.limits),
    };
    bytes.expect("an accepted config serializes")
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, contents)) = data.split_first() else {
        return;
    };
    let fuzzed = ConfigKind::ALL[usize::from(selector) % ConfigKind::ALL.len()];
    let key = MasterKey::from_bytes([7; 32]);
    let mut draft = Draft::default();
    for (kind, base) in BASE {
        let bytes = if kind == fuzzed {
            contents
        } else {
            base.as_bytes()
        };
        if let Err(message) = parse_into(&mut draft, kind, bytes) {
            assert!(
                message.contains(kind.file_name()),
                "the error names the file: {message}"
            );
            return;
        }
    }
    let snapshot = match Snapshot::build(draft, &key) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            assert!(!error.to_string().is_empty(), "a refusal says why");
            return;
        }
    };

    // Accepted: written back as the store writes it, it loads to the same configuration.
    let accepted = snapshot.to_draft();
    let mut reloaded = Draft::default();
    for kind in ConfigKind::ALL {
        let bytes = written(&accepted, kind);
        parse_into(&mut reloaded, kind, &bytes)
            .unwrap_or_else(|error| panic!("an accepted config does not read back: {error}"));
    }
    let reloaded = Snapshot::build(reloaded, &key)
        .unwrap_or_else(|error| panic!("an accepted config does not validate again: {error}"))
        .to_draft();
    assert_eq!(
        reloaded, accepted,
        "an accepted config changed when written and read back"
    );

    // And its limits work in the budget layer's arithmetic, now and at the extremes of the
    // instants a usage log can hold.
    let default_zone = limits::parse_time_zone(&accepted.settings.budget_time_zone)
        .expect("validation checked the default time zone");
    let counters = MemoryCounterStore::new();
    let instants = [
        Utc::now(),
        DateTime::<Utc>::from_timestamp(0, 0).expect("the epoch"),
        DateTime::<Utc>::from_timestamp(4_102_444_800, 0).expect("2100"),
    ];
    for limit in &accepted.limits.limits {
        let counter = counter_key(limit, default_zone);
        counters.register(&counter);
        let mut totals = WindowTotals::new(limit.window);
        for now in instants {
            let _ = alert_window_start(&counter, now);
            let amounts = Amounts {
                cost_usd: 1.0,
                calls: 1.0,
                input_tokens: 1.0,
                output_tokens: 1.0,
            };
            totals.add(limit.window, counter.zone, now, &amounts);
            counters.add_now(now, std::slice::from_ref(&counter), &amounts);
            let _ = totals.used(limit.window, counter.zone, now);
            let _ = totals.resets_at(
                limit.window,
                counter.zone,
                now,
                limit.metric,
                0.0,
                1.0,
                limit.value,
            );
            let _ = counters.read(now, &counter);
            let _ = counters.resets_at(now, &counter, limit.metric, 1.0, limit.value);
        }
    }
});
