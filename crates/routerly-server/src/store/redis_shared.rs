//! [`SharedRedis`]: the state replicas share through Redis besides budget counters (those
//! are [`super::redis_counters`]): which alerts were sent, and login attempts.
//!
//! Keys, under the same prefix (`ROUTERLY_REDIS_PREFIX`, default `routerly`):
//! - `{prefix}:alert:{limit}:{window start}:{event}:{threshold}`: set once, with `NX`, by
//!   the replica that delivers that alert; it expires when the limit's window ends.
//! - `{prefix}:login:{sha-256 of the limiter key}`: a sorted set of attempt ids scored by
//!   their time (Unix milliseconds), trimmed to the login window on every attempt and
//!   expiring with it. The key is hashed so that emails and addresses are not stored.
//! - `{prefix}:circuits`: a hash of model id to when a replica last opened its circuit
//!   (Unix seconds); see [`crate::routing::stats`].
//! - `{prefix}:stats`: a stream of routing-statistics counts, one entry per replica and
//!   half second in which it observed calls (fields `r`: the replica id, `d`: the counts as
//!   JSON), trimmed to the statistics' retention and expiring with it; see
//!   [`crate::routing::stats`].
//!
//! When Redis cannot be reached: an alert is delivered anyway by each replica that saw it
//! (a duplicate rather than a lost alert); a login follows [`FailureMode`]: fail-closed
//! refuses it (503), fail-open counts it in the replica's own limiter, with an error log,
//! so logins are never unlimited; circuits are each replica's own until it is back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::redis_counters::{FailureMode, RedisSettings, connect};

/// Counts a login attempt on every key if each has room. KEYS: the sorted sets. ARGV: now
/// (ms), window (ms), the attempt's id, then each key's limit. Answers 0 when counted, else
/// the milliseconds until the fullest key has room again.
const LOGIN_BEGIN: &str = r#"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for i = 1, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local limit = tonumber(ARGV[3 + i])
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
    local until_room = tonumber(oldest[2]) + window - now
    if until_room > wait then wait = until_room end
  end
end
if wait > 0 then return wait end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[i], window)
end
return 0
"#;

/// How long a circuit's opening is kept (far beyond any cool-down).
const CIRCUITS_TTL_SECONDS: u64 = 24 * 3600;

/// Redis for alert de-duplication, login limits and circuits; see the module documentation.
pub struct SharedRedis {
    connection: ConnectionManager,
    login_script: redis::Script,
    prefix: String,
    failure_mode: FailureMode,
}

impl std::fmt::Debug for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRedis")
            .field("prefix", &self.prefix)
            .field("failure_mode", &self.failure_mode)
            .finish_non_exhaustive()
    }
}

/// What became of a login attempt counted in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginCount {
    /// Counted.
    Counted,
    /// A key had no room; it has again after this long.
    Full(Duration),
}

impl SharedRedis {
    /// The shared state when `ROUTERLY_REDIS_URL` is set (same settings as the counters).
    pub fn from_env() -> Result<Option<Arc<Self>>, String> {
        let Some(settings) = RedisSettings::from_env(Duration::from_secs(60))? else {
            return Ok(None);
        };
        Ok(Some(Arc::new(SharedRedis::open(&settings)?)))
    }

    /// Shared state in the Redis of `settings` (connected on first use).
    pub fn open(settings: &RedisSettings) -> Result<Self, String> {
        Ok(SharedRedis {
            connection: connect(&settings.url)?,
            login_script: redis::Script::new(LOGIN_BEGIN),
            prefix: settings.prefix.clone(),
            failure_mode: settings.failure_mode,
        })
    }

    /// What happens when Redis cannot be reached.
    pub fn failure_mode(&self) -> FailureMode {
        self.failure_mode
    }

    /// Claims the delivery of one alert: `true` for the first replica only. `name` names
    /// the alert (limit, window, event, threshold); the claim lasts `ttl`.
    pub async fn claim_alert(&self, name: &str, ttl: Duration) -> redis::RedisResult<bool> {
        let key = format!("{}:alert:{name}", self.prefix);
        let millis = ttl.as_millis().clamp(1_000, u128::from(u64::MAX)) as u64;
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(set.is_some())
    }

    fn login_key(&self, key: &str) -> String {
        format!("{}:login:{}", self.prefix, hex::encode(Sha256::digest(key)))
    }

    /// Counts attempt `id` against every `(key, limit)` within `window`, or says how long
    /// until the fullest has room.
    pub async fn login_begin(
        &self,
        keys: &[(String, usize)],
        id: &str,
        window: Duration,
    ) -> redis::RedisResult<LoginCount> {
        let mut invocation = self.login_script.prepare_invoke();
        for (key, _) in keys {
            invocation.key(self.login_key(key));
        }
        invocation
            .arg(now_millis())
            .arg(window.as_millis() as u64)
            .arg(id);
        for (_, limit) in keys {
            invocation.arg(*limit);
        }
        let wait: u64 = invocation
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(match wait {
            0 => LoginCount::Counted,
            millis => LoginCount::Full(Duration::from_millis(millis)),
        })
    }

    /// Uncounts attempt `id` from `keys` and forgets `cleared` (all its attempts).
    pub async fn login_uncount(
        &self,
        keys: &[&str],
        cleared: Option<&str>,
        id: &str,
    ) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("ZREM").arg(self.login_key(key)).arg(id).ignore();
        }
        if let Some(key) = cleared {
            pipe.cmd("DEL").arg(self.login_key(key)).ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await
    }
}

/// Entries of the statistics stream read at once.
pub const STATS_PAGE: usize = 1_000;

/// An entry of the statistics stream: its id, then its fields and values in turn.
pub type StatsEntry = (String, Vec<String>);

/// What a replica tells the others in one exchange (see [`SharedRedis::exchange_routing`]).
#[derive(Debug)]
pub struct RoutingNews<'a> {
    /// Circuits opened here: (model id, when, Unix seconds).
    pub opened: &'a [(String, f64)],
    /// This replica's id and its counts since the last exchange (JSON), if any.
    pub counts: Option<(&'a str, &'a str)>,
    /// Entries older than this (Unix milliseconds) are dropped from the stream.
    pub keep_since_ms: u64,
    /// Where to read the stream from: `(ID` after the last entry read, or a time in
    /// milliseconds (inclusive) at first.
    pub read_from: &'a str,
}

impl SharedRedis {
    /// One round trip: tells the other replicas the circuits opened and the calls counted
    /// here, and answers when every circuit was last opened by any replica and up to
    /// [`STATS_PAGE`] entries of the statistics stream from `news.read_from` (this
    /// replica's own among them; more with [`SharedRedis::read_stats`]).
    pub async fn exchange_routing(
        &self,
        news: &RoutingNews<'_>,
    ) -> redis::RedisResult<(HashMap<String, f64>, Vec<StatsEntry>)> {
        let key = format!("{}:circuits", self.prefix);
        let stats_key = self.stats_key();
        let mut pipe = redis::pipe();
        if let Some((replica, counts)) = news.counts {
            pipe.cmd("XADD")
                .arg(&stats_key)
                .arg("MINID")
                .arg("~")
                .arg(news.keep_since_ms)
                .arg("*")
                .arg("r")
                .arg(replica)
                .arg("d")
                .arg(counts)
                .ignore();
            let ttl = now_millis().saturating_sub(news.keep_since_ms).max(1_000);
            pipe.cmd("PEXPIRE").arg(&stats_key).arg(ttl).ignore();
        }
        if !news.opened.is_empty() {
            for (model_id, at) in news.opened {
                pipe.cmd("HSET").arg(&key).arg(model_id).arg(*at).ignore();
            }
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(CIRCUITS_TTL_SECONDS)
                .ignore();
        }
        pipe.cmd("HGETALL").arg(&key);
        pipe.cmd("XRANGE")
            .arg(&stats_key)
            .arg(news.read_from)
            .arg("+")
            .arg("COUNT")
            .arg(STATS_PAGE);
        pipe.query_async(&mut self.connection.clone()).await
    }

    /// Up to [`STATS_PAGE`] entries of the statistics stream after entry `after`.
    pub async fn read_stats(&self, after: &str) -> redis::RedisResult<Vec<StatsEntry>> {
        redis::cmd("XRANGE")
            .arg(self.stats_key())
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(STATS_PAGE)
            .query_async(&mut self.connection.clone())
            .await
    }

    fn stats_key(&self) -> String {
        format!("{}:stats", self.prefix)
    }
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}
