//! Behaviour of `/api/usage` through the typed contract: every report's success, validation
//! and not-found paths, answers read into `routerly-api` types. The harness holds three
//! calls: two of `alpha` on `m1` ($0.50 by alice tagged web, $0.25 by bob tagged batch) and
//! one of `beta` on `m2` ($4 by carol).

use crate::management;

use http::{Method, StatusCode};
use management::{Answer, Harness};
use routerly_api::usage::{
    Bucket, Outcome, Timeline, TokenLastUse, UsageByModel, UsageByProject, UsageByToken,
    UsageByUser, UsageLastUse, UsagePage, UsageSummary,
};
use routerly_api::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;

/// The answer's body read into the type the route documents; the status must be 200.
fn read<T: DeserializeOwned>(answer: Answer) -> T {
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "unexpected answer: {}",
        answer.text
    );
    serde_json::from_value(answer.body).expect("the answer is the documented type")
}

async fn get<T: DeserializeOwned>(harness: &Harness, caller: &str, path: &str) -> T {
    let token = harness.token(caller).await;
    read(harness.call(Method::GET, path, Some(&token), None).await)
}

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 1e-9
}

#[tokio::test]
async fn records_are_paged_newest_first_within_the_callers_projects() {
    let harness = Harness::start().await;
    let page: UsagePage = get(&harness, "admin", "/api/usage").await;
    assert_eq!(
        (
            page.records.len(),
            page.total,
            page.limit,
            page.offset,
            page.has_more
        ),
        (3, Some(3), 50, 0, false)
    );
    assert!(
        page.records
            .windows(2)
            .all(|pair| pair[0].timestamp >= pair[1].timestamp),
        "newest first"
    );
    let second: UsagePage = get(&harness, "admin", "/api/usage?limit=1&offset=1").await;
    assert_eq!((second.records.len(), second.has_more), (1, true));
    assert_eq!(second.records[0].id, page.records[1].id);

    // A member of alpha only: alpha's two records, whatever filter it asks for.
    let scoped: UsagePage = get(&harness, "project-viewer", "/api/usage").await;
    assert_eq!(scoped.total, Some(2));
    assert!(
        scoped
            .records
            .iter()
            .all(|record| record.project_id == "p-alpha")
    );

    // Filters: by user, by tag, by outcome.
    let bob: UsagePage = get(&harness, "admin", "/api/usage?user=bob").await;
    assert_eq!(bob.records.len(), 1);
    assert_eq!(bob.records[0].tags, ["batch"]);
    let tagged: UsagePage = get(&harness, "admin", "/api/usage?tag=web").await;
    assert_eq!(tagged.records[0].user.as_deref(), Some("alice"));
    let failed: UsagePage = get(&harness, "admin", "/api/usage?outcome=error").await;
    assert!(failed.records.is_empty());
    assert_eq!(page.records[0].outcome, Outcome::Success);
}

#[tokio::test]
async fn a_trace_finds_its_records_within_the_callers_projects() {
    let harness = Harness::start().await;
    let all: UsagePage = get(&harness, "admin", "/api/usage?trace=t").await;
    assert_eq!((all.records.len(), all.total), (3, Some(3)));
    let scoped: UsagePage = get(&harness, "outsider", "/api/usage?trace=t").await;
    assert_eq!(scoped.records.len(), 1, "beta's record only");
    assert_eq!(scoped.records[0].project_id, "p-beta");
    let none: UsagePage = get(&harness, "admin", "/api/usage?trace=unknown").await;
    assert!(none.records.is_empty());
}

#[tokio::test]
async fn bad_filters_are_refused_naming_the_parameter() {
    let harness = Harness::start().await;
    let token = harness.token("admin").await;
    let long = "x".repeat(65);
    for (path, field) in [
        ("/api/usage?outcome=bogus", Some("outcome")),
        (
            "/api/usage/summary?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            Some("from"),
        ),
        ("/api/usage/summary?from=yesterday", None),
        ("/api/usage?limit=-1", None),
        (&format!("/api/usage?trace={long}"), Some("trace")),
        ("/api/usage/timeline?bucket=week", Some("bucket")),
        ("/api/usage/timeline?tz=Mars/Olympus", Some("tz")),
        // Checked on every route, also where it is not used.
        (&format!("/api/usage/summary?trace={long}"), Some("trace")),
        (&format!("/api/usage/export?tz={long}"), Some("tz")),
        ("/api/usage?offset=9223372036854775808", Some("offset")),
        ("/api/usage/summary?bucket=week", Some("bucket")),
        ("/api/usage/by-user?format=xml", Some("format")),
        (
            "/api/usage/timeline?limit=9223372036854775808",
            Some("limit"),
        ),
        ("/api/usage/export?format=xml", Some("format")),
        ("/api/usage/by-model?colour=blue", Some("colour")),
    ] {
        let answer = harness.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.text
        );
        let error: ErrorBody = serde_json::from_value(answer.body).expect("an error body");
        assert_eq!(error.error.code, ErrorCode::Invalid, "{path}");
        if field.is_some() {
            assert_eq!(error.error.field.as_deref(), field, "{path}");
        }
    }
    let long_filter = "m".repeat(513);
    let answer = harness
        .call(
            Method::GET,
            &format!("/api/usage/summary?model={long_filter}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unknown_project_is_not_found_and_another_ones_is_forbidden() {
    let harness = Harness::start().await;
    let admin = harness.token("admin").await;
    let answer = harness
        .call(
            Method::GET,
            "/api/usage/summary?project=ghost",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    // A scoped caller learns nothing about which projects exist.
    let member = harness.token("project-viewer").await;
    for project in ["ghost", "beta"] {
        let answer = harness
            .call(
                Method::GET,
                &format!("/api/usage/summary?project={project}"),
                Some(&member),
                None,
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{project}");
    }
    let alpha: UsageSummary = get(
        &harness,
        "project-viewer",
        "/api/usage/summary?project=alpha",
    )
    .await;
    assert_eq!(alpha.totals.calls, 2);
}

#[tokio::test]
async fn the_summary_totals_calls_outcomes_and_cost() {
    let harness = Harness::start().await;
    let summary: UsageSummary = get(&harness, "viewer", "/api/usage/summary").await;
    let totals = &summary.totals;
    assert_eq!((totals.calls, totals.errors, totals.refused), (3, 0, 0));
    assert_eq!(totals.provider_calls, 3);
    assert_eq!(totals.by_outcome.get(&Outcome::Success), Some(&3));
    assert_eq!(
        totals.by_outcome.len(),
        1,
        "outcomes without calls are left out"
    );
    assert_eq!(
        (
            totals.input_tokens,
            totals.output_tokens,
            totals.total_tokens
        ),
        (30, 15, 45)
    );
    assert!(close(totals.cost_usd, 4.75), "{}", totals.cost_usd);
    assert!(close(totals.avg_latency_ms, 12.0));
    let p50 = totals.p50_latency_ms.expect("a median");
    assert!((p50 - 12.0).abs() < 0.5, "{p50}");
    assert_eq!((summary.from, summary.to), (None, None));

    let bounded: UsageSummary = get(
        &harness,
        "viewer",
        "/api/usage/summary?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(bounded.totals.calls, 0);
    assert_eq!(bounded.totals.p50_latency_ms, None);
    assert_eq!(
        bounded.from.map(|time| time.to_rfc3339()).as_deref(),
        Some("2000-01-01T00:00:00+00:00")
    );
}

#[tokio::test]
async fn breakdowns_are_most_expensive_first() {
    let harness = Harness::start().await;
    let by_model: UsageByModel = get(&harness, "admin", "/api/usage/by-model").await;
    let models: Vec<(&str, u64)> = by_model
        .models
        .iter()
        .map(|row| (row.model_id.as_str(), row.totals.calls))
        .collect();
    assert_eq!(models, [("m2", 1), ("m1", 2)]);

    let by_project: UsageByProject = get(&harness, "admin", "/api/usage/by-project").await;
    let projects: Vec<&str> = by_project
        .projects
        .iter()
        .map(|row| row.project_id.as_str())
        .collect();
    assert_eq!(projects, ["p-beta", "p-alpha"]);

    let by_token: UsageByToken = get(&harness, "project-viewer", "/api/usage/by-token").await;
    assert_eq!(by_token.tokens.len(), 1);
    assert_eq!(by_token.tokens[0].token_id, "t-alpha");
    assert!(close(by_token.tokens[0].totals.cost_usd, 0.75));

    let by_user: UsageByUser = get(&harness, "admin", "/api/usage/by-user").await;
    let users: Vec<&str> = by_user.users.iter().map(|row| row.user.as_str()).collect();
    assert_eq!(users, ["carol", "alice", "bob"]);
    let tags: Vec<&str> = by_user.tags.iter().map(|row| row.tag.as_str()).collect();
    assert_eq!(tags, ["secret-beta-tag", "web", "batch"]);
}

#[tokio::test]
async fn the_timeline_has_one_point_per_bucket_with_calls() {
    let harness = Harness::start().await;
    let days: Timeline = get(&harness, "admin", "/api/usage/timeline").await;
    assert_eq!((days.bucket, days.tz.as_str()), (Bucket::Day, "UTC"));
    assert_eq!(days.points.len(), 1);
    assert_eq!(days.points[0].totals.calls, 3);
    let hours: Timeline = get(
        &harness,
        "admin",
        "/api/usage/timeline?bucket=hour&tz=Europe/Rome",
    )
    .await;
    assert_eq!(
        (hours.bucket, hours.tz.as_str()),
        (Bucket::Hour, "Europe/Rome")
    );
    let calls: u64 = hours.points.iter().map(|point| point.totals.calls).sum();
    assert_eq!(calls, 3);
}

#[tokio::test]
async fn the_export_streams_every_matching_record() {
    let harness = Harness::start().await;
    let token = harness.token("project-viewer").await;
    let csv = harness
        .call(Method::GET, "/api/usage/export", Some(&token), None)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and alpha's two calls: {}",
        csv.text
    );
    assert!(lines[0].starts_with("id,"), "{}", lines[0]);
    let jsonl = harness
        .call(
            Method::GET,
            "/api/usage/export?format=jsonl",
            Some(&token),
            None,
        )
        .await;
    let records: Vec<routerly_api::usage::UsageRecord> = jsonl
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a usage record"))
        .collect();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|record| record.project_id == "p-alpha"));
}

#[tokio::test]
async fn last_use_names_each_tokens_newest_call_in_one_answer() {
    let harness = Harness::start().await;
    let all: UsageLastUse = get(&harness, "admin", "/api/usage/last-use").await;
    let page: UsagePage = get(&harness, "admin", "/api/usage").await;
    let newest = |token: &str| {
        page.records
            .iter()
            .filter(|record| record.token_id == token)
            .map(|record| record.timestamp)
            .max()
            .expect("the token has records")
    };
    let mut expected = vec![
        TokenLastUse {
            token_id: "t-alpha".into(),
            last_used_at: newest("t-alpha"),
        },
        TokenLastUse {
            token_id: "t-beta".into(),
            last_used_at: newest("t-beta"),
        },
    ];
    expected.sort_by_key(|row| std::cmp::Reverse(row.last_used_at));
    assert_eq!(all.tokens, expected, "every token, most recent first");

    // Scoped like every usage answer: a member of alpha sees alpha's token only, and is
    // refused beta's project by name.
    let scoped: UsageLastUse = get(&harness, "project-viewer", "/api/usage/last-use").await;
    let tokens: Vec<&str> = scoped
        .tokens
        .iter()
        .map(|row| row.token_id.as_str())
        .collect();
    assert_eq!(tokens, ["t-alpha"]);
    let member = harness.token("project-viewer").await;
    let refused = harness
        .call(
            Method::GET,
            "/api/usage/last-use?project=beta",
            Some(&member),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);

    // Filters narrow it: a token, a time range with no calls.
    let one: UsageLastUse = get(&harness, "admin", "/api/usage/last-use?token=t-beta").await;
    assert_eq!(one.tokens.len(), 1);
    assert_eq!(one.tokens[0].token_id, "t-beta");
    let none: UsageLastUse = get(
        &harness,
        "admin",
        "/api/usage/last-use?to=2020-01-01T00:00:00Z",
    )
    .await;
    assert!(none.tokens.is_empty(), "{none:?}");
}
