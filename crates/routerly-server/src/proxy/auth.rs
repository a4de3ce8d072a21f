//! Authentication of a proxied call: the project token from `Authorization: Bearer …` or
//! `x-api-key`, found by its SHA-256 digest (the configuration keeps only digests) and
//! compared in constant time.
//!
//! SHA-256 of a token is about 3,500 instructions where the CPU has no SHA extensions
//! (Intel Xeons before Ice Lake, and callgrind's count): the biggest single cost of a call's
//! authentication. So each worker thread remembers the digests of the tokens that
//! authenticated on it. A token is found there by a randomly seeded 64-bit hash and
//! compared whole in constant time; a miss, or a token that never authenticated, is
//! hashed with SHA-256 as before. The memo maps a token to its digest only, which never
//! changes: whether the token is still valid (revoked, expired, removed) is decided by
//! the current configuration on every call. It holds at most [`MEMO_CAPACITY`] tokens per
//! thread, only ones that were valid when remembered, so unknown tokens cannot fill it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::BuildHasher;

use http::HeaderMap;
use routerly_core::canonical::ErrorKind;
use routerly_core::config::{Project, ProjectToken};
use routerly_core::wire::WireFormat;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ProxyError;
use crate::store::config::Snapshot;

/// Most tokens a thread remembers; past it the memo starts again.
const MEMO_CAPACITY: usize = 4096;

/// Tokens that authenticated on this thread, by a seeded hash of the token.
#[derive(Default)]
struct Memo {
    hasher: foldhash::fast::RandomState,
    known: HashMap<u64, Known, foldhash::fast::RandomState>,
}

/// A token that authenticated, with its SHA-256 digest.
struct Known {
    token: Box<[u8]>,
    digest: [u8; 32],
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
}

/// SHA-256 of `token`, remembered for a token `snapshot` knows.
fn digest(snapshot: &Snapshot, token: &str) -> [u8; 32] {
    let token = token.as_bytes();
    MEMO.with_borrow_mut(|memo| {
        let key = memo.hasher.hash_one(token);
        if let Some(known) = memo.known.get(&key)
            && bool::from(known.token.as_ref().ct_eq(token))
        {
            return known.digest;
        }
        let digest: [u8; 32] = Sha256::digest(token).into();
        if snapshot.token_by_hash(&digest).is_some() {
            if memo.known.len() >= MEMO_CAPACITY {
                memo.known.clear();
            }
            let token = token.into();
            memo.known.insert(key, Known { token, digest });
        }
        digest
    })
}

/// A project token that passed authentication.
#[derive(Clone, Copy)]
pub(super) struct Caller<'s> {
    pub(super) project: &'s Project,
    pub(super) token: &'s ProjectToken,
}

/// The caller of a request bearing a project token, or the refusal in `format`'s shape.
pub(super) fn authenticate<'s>(
    snapshot: &'s Snapshot,
    headers: &HeaderMap,
    format: WireFormat,
) -> Result<Caller<'s>, ProxyError> {
    let unauthorized = |message: &str| ProxyError::new(format, ErrorKind::Authentication, message);
    let presented = bearer_token(headers).ok_or_else(|| {
        unauthorized(
            "Missing API key: send your Routerly project token as `Authorization: Bearer sk-lr-…` or in `x-api-key`.",
        )
    })?;
    let hash = digest(snapshot, presented);
    let (project, token) = snapshot
        .token_by_hash(&hash)
        .ok_or_else(|| unauthorized("Invalid API key: this token is not known to Routerly."))?;
    if token.revoked_at.is_some() {
        return Err(unauthorized("This token has been revoked."));
    }
    if let Some(expires_at) = token.expires_at
        && expires_at <= chrono::Utc::now()
    {
        return Err(unauthorized(&format!(
            "This token expired at {}.",
            expires_at.to_rfc3339()
        )));
    }
    Ok(Caller { project, token })
}

/// The token from `Authorization: Bearer …` or `x-api-key`.
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return Some(value[7..].trim());
        }
    }
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    use crate::store::{Draft, MasterKey};

    const KNOWN: &str = "sk-lr-memo-known-0123456789abcdef0123456";

    fn entry(id: &str, secret: &str, revoked: bool) -> Value {
        let mut entry = json!({
            "id": id,
            "hash": hex::encode(Sha256::digest(secret)),
            "snippet": "sk-lr-memo…",
        });
        if revoked {
            entry["revoked_at"] = json!(chrono::Utc::now());
        }
        entry
    }

    fn snapshot(tokens: Value) -> Snapshot {
        let draft = Draft {
            projects: serde_json::from_value(json!({ "projects": [{
                "id": "p1", "name": "Memo", "slug": "memo", "models": [], "tokens": tokens,
            }] }))
            .expect("a projects file"),
            ..Draft::default()
        };
        Snapshot::build(draft, &MasterKey::generate()).expect("a valid configuration")
    }

    fn status(snapshot: &Snapshot, token: &str) -> u16 {
        let mut headers = HeaderMap::new();
        let value = format!("Bearer {token}").parse().expect("a header value");
        headers.insert(http::header::AUTHORIZATION, value);
        match authenticate(snapshot, &headers, WireFormat::OpenAiChat) {
            Ok(caller) => {
                assert_eq!(caller.token.id, "t1");
                200
            }
            Err(error) => error.status,
        }
    }

    fn remembered() -> usize {
        MEMO.with_borrow(|memo| memo.known.len())
    }

    #[test]
    fn only_tokens_that_authenticate_are_remembered_and_the_configuration_still_decides() {
        let valid = snapshot(json!([entry("t1", KNOWN, false)]));
        let before = remembered();
        // Unknown tokens, one of them the known one with a byte changed, are hashed every
        // time and never remembered.
        let near = KNOWN.replace("0123", "0124");
        for attempt in (0..50).map(|n| format!("sk-lr-guess-{n}")).chain([near]) {
            assert_eq!(status(&valid, &attempt), 401, "{attempt}");
        }
        assert_eq!(remembered(), before);

        // A valid token is remembered once; its digest from the memo is its SHA-256.
        assert_eq!(status(&valid, KNOWN), 200);
        assert_eq!(remembered(), before + 1);
        assert_eq!(status(&valid, KNOWN), 200);
        assert_eq!(remembered(), before + 1);
        assert_eq!(
            digest(&valid, KNOWN),
            <[u8; 32]>::from(Sha256::digest(KNOWN))
        );

        // Remembered, then revoked or removed: the configuration of the call refuses it.
        assert_eq!(
            status(&snapshot(json!([entry("t1", KNOWN, true)])), KNOWN),
            401
        );
        assert_eq!(status(&snapshot(json!([])), KNOWN), 401);
        assert_eq!(status(&valid, KNOWN), 200);
    }
}
