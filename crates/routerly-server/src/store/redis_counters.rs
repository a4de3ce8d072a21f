//! [`RedisCounterStore`]: budget counters and reservations shared by every replica through
//! Redis (`ROUTERLY_REDIS_URL`).
//!
//! Keys, under a prefix (`ROUTERLY_REDIS_PREFIX`, default `routerly`):
//! - `{prefix}:u:{counter}`: the counter's usage, a hash of `{bucket}:{metric}` to a float,
//!   where the bucket is the calendar window's start or the rolling window's bucket start
//!   (Unix seconds) and the metric is `c` (cost), `n` (calls), `i` / `o` (tokens).
//! - `{prefix}:r:{counter}`: reservations held against the counter, a hash of replica id to
//!   the sums of that replica's holds on it, `cost|calls|input|output` (see [`HOLD_LUA`]).
//! - `{prefix}:alive:{replica}`: exists while the replica lives (set for the reservation TTL,
//!   `ROUTERLY_REDIS_RESERVATION_TTL_SECONDS`, default twice the default connect plus
//!   first-token timeouts, by every reservation and by the refresher): a check counts only
//!   live replicas' holds and deletes a dead one's, so the holds of a replica that died are
//!   released within the TTL. The scripts name these keys themselves (one Redis, not a Redis
//!   Cluster).
//!
//! One call's reservation is one `EVALSHA` of [`RESERVE`]: every check and every hold, atomic.
//! Where every limit of a call is far from full, the script also leases the replica room for
//! more calls like it, which it then admits in memory ([`Lease`]). Usage is added and
//! reservations released off the request path by one task that sends what has gathered in
//! [`LINGER`] as one pipeline: the usage summed per hash field, then the releases summed per
//! counter in one call of [`RELEASE`].
//!
//! Reads come from a local view ([`MemoryCounterStore`]) refreshed from Redis every second.
//! When Redis cannot be reached the [`FailureMode`] decides: fail-closed refuses calls with
//! `budget_unavailable`; fail-open reserves against the local view (last known totals plus
//! this replica's own use since), logs an error and counts `routerly_budget_fail_open_total`.

use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use routerly_core::limits::{
    self, Amounts, Metric, Window, WindowTotals, calendar_window, rolling_bucket_seconds,
};
use tokio::sync::mpsc;

use super::StoreFuture;
use super::counters::{
    Check, CheckFailed, CounterError, CounterHealth, CounterKey, CounterReading, CounterStore,
    MemoryCounterStore, ReservationId, Reserved,
};

/// The Lua both scripts share. A counter's reservations are one hash with one field per
/// replica holding any: the sums of that replica's holds on the counter, `cost|calls|input|
/// output`. A replica adds a call's hold to its field when it reserves and subtracts the
/// holds it let go, summed per counter, once per batch; the field goes when it empties. A
/// replica is alive while its key `{prefix}:alive:{replica}` is (set for the reservation
/// TTL by every reservation and every second by the replica): a check counts the fields of
/// live replicas and deletes the others, so a dead replica's holds come back within the
/// TTL, and a long call on a live replica keeps its hold however long it runs. A check
/// reads one small hash per counter instead of a hold per call in flight.
const HOLD_LUA: &str = r#"
local function parse(entry)
  if not entry then return 0, 0, 0, 0 end
  local c, n, i, o = string.match(entry, '^([^|]+)|([^|]+)|([^|]+)|([^|]+)$')
  return tonumber(c) or 0, tonumber(n) or 0, tonumber(i) or 0, tonumber(o) or 0
end
-- Adds `times` the four amounts of ARGV from `at` to `replica`'s field of `key` (a negative
-- `times` takes them off); a field left with nothing (float dust aside) is deleted, and
-- none goes below zero.
local function change(key, replica, at, times)
  local c, n, i, o = parse(redis.call('HGET', key, replica))
  c = c + times * tonumber(ARGV[at])
  n = n + times * tonumber(ARGV[at + 1])
  i = i + times * tonumber(ARGV[at + 2])
  o = o + times * tonumber(ARGV[at + 3])
  if c < 1e-9 and n < 1e-9 and i < 1e-9 and o < 1e-9 then
    redis.call('HDEL', key, replica)
    return
  end
  redis.call('HSET', key, replica, string.format('%.17g|%.17g|%.17g|%.17g',
    math.max(c, 0), math.max(n, 0), math.max(i, 0), math.max(o, 0)))
end
"#;

/// Reserves every hold if every check fits, and with it a lease: `own + lease` times the
/// holds, where `own` is 1 for a call's reservation and 0 for a lease alone, and `lease` is
/// the most calls like this one (up to ARGV[5]) for which each check leaves at least
/// ARGV[6] times as much room again, so near a limit's edge there is no lease and the
/// reservation is exact. KEYS: per check its usage and reservation hashes, then per hold
/// its reservation hash. ARGV: the replica's id, the prefix of the replicas' liveness keys,
/// the TTL (ms), the check count, the most calls leased, the share of the room a lease
/// leaves (its reciprocal), `own`, then per check its metric (1–4, 5 for input plus output
/// tokens), first live bucket, needed amount and value, then per hold its four amounts.
/// Answers `{0, lease}`, or `{check index, used, reserved}`.
const RESERVE: &str = r#"
local replica = ARGV[1]
local alive = ARGV[2]
local ttl = tonumber(ARGV[3])
local checks = tonumber(ARGV[4])
local names = {'c', 'n', 'i', 'o'}
local function pick(metric, c, n, i, o)
  if metric == 1 then return c end
  if metric == 2 then return n end
  if metric == 3 then return i end
  if metric == 4 then return o end
  return i + o
end
local function reserved(key, metric)
  local all = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #all, 2 do
    local owner = all[j]
    if owner == replica or redis.call('EXISTS', alive .. owner) == 1 then
      total = total + pick(metric, parse(all[j + 1]))
    else
      redis.call('HDEL', key, owner)
    end
  end
  return total
end
local function used(key, metric, first)
  local total = 0
  local all = redis.call('HGETALL', key)
  for j = 1, #all, 2 do
    local field = all[j]
    local name = string.sub(field, -1)
    local wanted = (metric == 5 and (name == 'i' or name == 'o')) or (metric < 5 and name == names[metric])
    if wanted and string.sub(field, -2, -2) == ':' then
      local bucket = tonumber(string.sub(field, 1, -3))
      if bucket >= first then total = total + tonumber(all[j + 1]) end
    end
  end
  return total
end
local lease = tonumber(ARGV[5])
local share = tonumber(ARGV[6])
local own = tonumber(ARGV[7])
local arg = 8
for c = 1, checks do
  local metric = tonumber(ARGV[arg])
  local first = tonumber(ARGV[arg + 1])
  local needed = tonumber(ARGV[arg + 2])
  local value = tonumber(ARGV[arg + 3])
  arg = arg + 4
  local u = used(KEYS[2 * c - 1], metric, first)
  local r = reserved(KEYS[2 * c], metric)
  local room = value - u - r - needed
  if room + math.abs(value) * 1e-9 + 2.220446049250313e-16 < 0 then
    return {c, tostring(u), tostring(r)}
  end
  if needed > 0 then lease = math.min(lease, math.floor(room / (needed * share))) end
end
lease = math.max(lease, 0)
redis.call('SET', alive .. replica, '1', 'PX', ttl)
for h = 2 * checks + 1, #KEYS do
  change(KEYS[h], replica, arg, own + lease)
  redis.call('PEXPIRE', KEYS[h], ttl)
  arg = arg + 4
end
return {0, lease}
"#;

/// Lets go of holds: ARGV is the replica's id, then per reservation hash of KEYS the four
/// amounts to take off its field (a batch's releases on that counter, summed).
const RELEASE: &str = r#"
for k = 1, #KEYS do change(KEYS[k], ARGV[1], 4 * k - 2, -1) end
"#;

/// The invocation of [`RELEASE`] for `replica` taking `holds` (reservation hash, summed
/// amounts) off its fields.
fn release_all<'a>(
    script: &'a redis::Script,
    replica: &str,
    holds: impl IntoIterator<Item = (&'a String, &'a Amounts)>,
) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    invocation.arg(replica);
    for (key, amounts) in holds {
        invocation
            .key(key)
            .arg(amounts.cost_usd)
            .arg(amounts.calls)
            .arg(amounts.input_tokens)
            .arg(amounts.output_tokens);
    }
    invocation
}

/// What happens to calls when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Refuse calls covered by a limit with 503 `budget_unavailable`.
    Closed,
    /// Admit them against this replica's local view of the counters, loudly.
    Open,
}

impl std::str::FromStr for FailureMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "closed" | "fail-closed" => Ok(FailureMode::Closed),
            "open" | "fail-open" => Ok(FailureMode::Open),
            other => Err(format!(
                "`{other}` is not a Redis failure mode; use `closed` or `open`"
            )),
        }
    }
}

/// Settings of [`RedisCounterStore`].
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key.
    pub prefix: String,
    /// What happens when Redis cannot be reached.
    pub failure_mode: FailureMode,
    /// How long a reservation holds when its replica never releases it.
    pub reservation_ttl: Duration,
}

impl RedisSettings {
    /// The settings from `ROUTERLY_REDIS_URL`, `ROUTERLY_REDIS_PREFIX`,
    /// `ROUTERLY_REDIS_FAILURE_MODE` and `ROUTERLY_REDIS_RESERVATION_TTL_SECONDS`; `None`
    /// when no URL is set. `default_ttl` applies when no TTL is set.
    pub fn from_env(default_ttl: Duration) -> Result<Option<Self>, String> {
        let Some(url) = std::env::var("ROUTERLY_REDIS_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            return Ok(None);
        };
        let prefix = std::env::var("ROUTERLY_REDIS_PREFIX")
            .ok()
            .filter(|prefix| !prefix.is_empty())
            .unwrap_or_else(|| "routerly".to_owned());
        if prefix.contains(char::is_whitespace) {
            return Err("ROUTERLY_REDIS_PREFIX must not contain spaces".to_owned());
        }
        let failure_mode = match std::env::var("ROUTERLY_REDIS_FAILURE_MODE") {
            Ok(mode) => mode.parse()?,
            Err(_) => FailureMode::Closed,
        };
        let reservation_ttl = match std::env::var("ROUTERLY_REDIS_RESERVATION_TTL_SECONDS") {
            Ok(seconds) => match seconds.trim().parse::<u64>() {
                Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
                _ => {
                    return Err(format!(
                        "ROUTERLY_REDIS_RESERVATION_TTL_SECONDS must be a positive number of seconds, not `{seconds}`"
                    ));
                }
            },
            Err(_) => default_ttl,
        };
        Ok(Some(RedisSettings {
            url,
            prefix,
            failure_mode,
            reservation_ttl,
        }))
    }
}

/// A connection to `url` that connects on first use and reconnects after a failure, with
/// short timeouts: a request waits at most about a second and a half for Redis.
pub fn connect(url: &str) -> Result<ConnectionManager, String> {
    let client =
        redis::Client::open(url).map_err(|error| format!("ROUTERLY_REDIS_URL: {error}"))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(500)))
        .set_response_timeout(Some(Duration::from_millis(1_000)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|error| format!("cannot set up the Redis connection: {error}"))
}

/// Where a reservation is held.
#[derive(Debug)]
enum Hold {
    /// In Redis, in this replica's field of these reservation hashes, with these amounts;
    /// mirrored in the local view (`local`) so that reads on this replica see it before the
    /// next refresh.
    Shared {
        holds: Vec<(String, Amounts)>,
        local: ReservationId,
    },
    /// In the local view (fail-open).
    Local(ReservationId),
}

/// A detached operation, applied in order.
#[derive(Debug)]
enum Op {
    Add {
        at: DateTime<Utc>,
        keys: Vec<CounterKey>,
        amounts: Amounts,
    },
    Release {
        holds: Vec<(String, Amounts)>,
    },
}

/// How long detached operations gather before a batch goes (unless a whole batch waits):
/// one pipeline for those milliseconds' calls rather than about one per call, which cost
/// Redis 10 to 40 µs per call. Meanwhile a call's hold stays until its usage is added with
/// it, so other replicas see the one or the other, never neither; they only get its room
/// back these milliseconds later.
const LINGER: Duration = Duration::from_millis(10);
/// Operations in one batch, at most.
const BATCH: usize = 1024;
/// Operations kept for a retry while Redis is away, at most.
const MAX_PENDING_OPS: usize = 100_000;
/// The most calls' room a reservation leases beyond its own hold (see [`Lease`]).
const LEASE_MOST: u32 = 128;
/// A lease with room for fewer calls than this asks Redis for this many more, off the
/// request path, so that calls seldom wait for a round trip.
const LEASE_REFILL: u32 = 64;
/// A lease takes at most this fraction (its reciprocal) of the room a limit has left, so
/// a limit with room for fewer than this many calls beyond the one reserving is reserved
/// exactly, call by call.
const LEASE_SHARE: u32 = 64;
/// How long a lease's room may be spent after its last grant (at most a third of the
/// reservation TTL); the room left then goes back to Redis within one refresh.
const LEASE_LIFETIME: Duration = Duration::from_secs(1);
/// The longest a call waits for leases' refills before it reserves in Redis itself.
const LEASE_WAIT: Duration = Duration::from_millis(100);

/// Room this replica holds in Redis beyond its calls in flight: a reservation that finds
/// a limit far from full holds `1 + n` times its call's amounts ([`RESERVE`]), and the
/// next `n` calls under the same limits (same counters, metrics and values) with no larger
/// estimate are admitted from that room here, without a round trip; when it falls below
/// [`LEASE_REFILL`] calls' room, a task asks for that many more. Their holds are
/// released as any other (a batch takes them off the replica's field); the room not spent
/// within [`LEASE_LIFETIME`] is taken off the field too. What another replica cannot get
/// meanwhile is bounded: at most [`LEASE_MOST`] calls' estimates per replica, never more
/// than 1/[`LEASE_SHARE`] of the room left when leased, for at most about two seconds.
#[derive(Debug)]
struct Lease {
    /// The limits it was granted under: counter, metric and value of each check.
    limits: Vec<(CounterKey, Metric, f64)>,
    /// Per hold of the calls it serves, in their order: the counter, its reservations
    /// hash and the room left.
    room: Vec<(CounterKey, String, Amounts)>,
    /// When the room stops being spent.
    until: Instant,
    /// Since when a reservation asking to add to it is on its way to Redis.
    asking: Option<Instant>,
    /// Wakes the calls waiting for that answer.
    answered: Arc<tokio::sync::Notify>,
    /// Until when calls reserve in Redis one by one without asking for more: the last
    /// request got nothing (a limit near its edge, or refused), so waiting for the next
    /// would only queue calls behind round trips.
    exact_until: Option<Instant>,
}

impl Lease {
    /// An empty lease for calls with `checks` and `holds`, whose first request (sent at
    /// `at`) is on its way; `hash` names a counter's reservations hash.
    fn new(
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
        hash: impl Fn(&CounterKey) -> String,
        at: Instant,
    ) -> Self {
        Lease {
            limits: checks
                .iter()
                .map(|check| (check.key.clone(), check.metric, check.value))
                .collect(),
            room: holds
                .iter()
                .map(|(key, _)| (key.clone(), hash(key), Amounts::default()))
                .collect(),
            until: at,
            asking: Some(at),
            answered: Arc::default(),
            exact_until: None,
        }
    }

    /// Whether a request for it is on its way at `at` (one that never came back, its
    /// call gone, stops counting after [`LEASE_LIFETIME`]).
    fn awaits_answer(&self, at: Instant) -> bool {
        self.asking
            .is_some_and(|since| at.duration_since(since) < LEASE_LIFETIME)
    }

    /// Whether the lease was granted under exactly `checks`' limits for `holds`' counters.
    fn serves(&self, checks: &[Check], holds: &[(CounterKey, Amounts)]) -> bool {
        self.limits.len() == checks.len()
            && self.room.len() == holds.len()
            && self
                .limits
                .iter()
                .zip(checks)
                .all(|((key, metric, value), check)| {
                    *key == check.key && *metric == check.metric && *value == check.value
                })
            && self
                .room
                .iter()
                .zip(holds)
                .all(|((key, _, _), (held, _))| key == held)
    }
}

/// What [`RedisCounterStore::reserve_leased`] found.
enum Leased {
    /// Admitted from a lease.
    Admitted(ReservationId),
    /// No room leased: reserve in Redis, asking for this many calls' lease beside.
    Ask(u32),
    /// The lease is short, and more is on its way: wait for it (or a while).
    Wait(std::pin::Pin<Box<tokio::sync::futures::OwnedNotified>>),
}

/// Whether `room` holds `amounts`, with the rounding [`limits::fits`] allows (room taken
/// `amounts` at a time out of `n` times `amounts` ends a hair short).
fn covers(room: &Amounts, amounts: &Amounts) -> bool {
    let fits = |room: f64, amount: f64| limits::fits(0.0, 0.0, amount, room);
    fits(room.cost_usd, amounts.cost_usd)
        && fits(room.calls, amounts.calls)
        && fits(room.input_tokens, amounts.input_tokens)
        && fits(room.output_tokens, amounts.output_tokens)
}

/// `amounts` times `n`.
fn times(amounts: &Amounts, n: f64) -> Amounts {
    Amounts {
        cost_usd: amounts.cost_usd * n,
        calls: amounts.calls * n,
        input_tokens: amounts.input_tokens * n,
        output_tokens: amounts.output_tokens * n,
    }
}

/// How often the local view is refreshed.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// See the module documentation.
pub struct RedisCounterStore {
    /// Itself, for the tasks that refill leases.
    me: Weak<RedisCounterStore>,
    /// Reservation scripts run, leases' refills included.
    round_trips: AtomicU64,
    connection: ConnectionManager,
    reserve_script: redis::Script,
    release_script: redis::Script,
    prefix: String,
    replica: String,
    failure_mode: FailureMode,
    reservation_ttl: Duration,
    view: MemoryCounterStore,
    holds: StdMutex<HashMap<ReservationId, Hold>>,
    /// Leases by a hash of the limits and counters they serve ([`Lease::serves`] checks).
    leases: StdMutex<HashMap<u64, Lease>>,
    lease_hasher: foldhash::fast::RandomState,
    lease_lifetime: Duration,
    next_id: AtomicU64,
    ops: mpsc::UnboundedSender<Op>,
    healthy: AtomicBool,
    /// Usage that could not be added to Redis is waiting to be replayed: until it is, Redis
    /// under-counts (a restarted Redis that persists nothing is empty), so reservations go
    /// the failure mode's way and the view is not replaced by Redis's figures.
    backlog: AtomicBool,
    fail_open_total: AtomicU64,
    last_loud_log: StdMutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisCounterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounterStore")
            .field("prefix", &self.prefix)
            .field("failure_mode", &self.failure_mode)
            .finish_non_exhaustive()
    }
}

impl RedisCounterStore {
    /// Opens the store (connecting lazily, so a replica starts while Redis is down) and
    /// starts its writer and refresher tasks; they stop when the store is dropped.
    pub fn open(settings: RedisSettings) -> Result<Arc<Self>, String> {
        let connection = connect(&settings.url)?;
        let (ops, receiver) = mpsc::unbounded_channel();
        let store = Arc::new_cyclic(|me| RedisCounterStore {
            me: me.clone(),
            round_trips: AtomicU64::new(0),
            connection,
            reserve_script: redis::Script::new(&format!("{HOLD_LUA}{RESERVE}")),
            release_script: redis::Script::new(&format!("{HOLD_LUA}{RELEASE}")),
            prefix: settings.prefix,
            replica: uuid::Uuid::new_v4().simple().to_string(),
            failure_mode: settings.failure_mode,
            reservation_ttl: settings.reservation_ttl,
            view: MemoryCounterStore::new(),
            holds: StdMutex::new(HashMap::new()),
            leases: StdMutex::new(HashMap::new()),
            lease_hasher: foldhash::fast::RandomState::default(),
            lease_lifetime: LEASE_LIFETIME.min(settings.reservation_ttl / 3),
            next_id: AtomicU64::new(1),
            ops,
            healthy: AtomicBool::new(true),
            backlog: AtomicBool::new(false),
            fail_open_total: AtomicU64::new(0),
            last_loud_log: StdMutex::new(None),
        });
        tokio::spawn(write_detached(Arc::downgrade(&store), receiver));
        tokio::spawn(refresh_view(Arc::downgrade(&store)));
        Ok(store)
    }

    fn usage_key(&self, key: &CounterKey) -> String {
        format!("{}:u:{key}", self.prefix)
    }

    fn reservations_key(&self, key: &CounterKey) -> String {
        format!("{}:r:{key}", self.prefix)
    }

    /// The liveness keys' prefix: `{prefix}:alive:{replica}` exists while the replica does.
    fn alive_prefix(&self) -> String {
        format!("{}:alive:", self.prefix)
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, HashMap<ReservationId, Hold>> {
        self.holds.lock().expect("hold lock is never poisoned")
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Lease>> {
        self.leases.lock().expect("lease lock is never poisoned")
    }

    /// The key of the lease that serves calls with `checks` and `holds`.
    fn lease_key(&self, checks: &[Check], holds: &[(CounterKey, Amounts)]) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut hasher = self.lease_hasher.build_hasher();
        for check in checks {
            check.key.hash(&mut hasher);
            check.metric.hash(&mut hasher);
            check.value.to_bits().hash(&mut hasher);
        }
        for (key, _) in holds {
            key.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// Admits a call from the room of the lease that serves it, when that room holds its
    /// holds: the reservation without a round trip. Otherwise, when `ask`, says how many
    /// calls' lease the reservation in Redis should ask for ([`LEASE_MOST`]), or, while
    /// another call's request for this lease is on its way, to wait for its answer (so a
    /// burst asks once, not per call).
    fn reserve_leased(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
        ask: bool,
    ) -> Leased {
        let key = self.lease_key(checks, holds);
        let at = Instant::now();
        let held: Vec<(String, Amounts)> = {
            let mut leases = self.leases();
            let lease = match leases.get_mut(&key) {
                Some(lease) if lease.serves(checks, holds) => lease,
                _ if !ask => return Leased::Ask(0),
                _ => {
                    let lease = Lease::new(checks, holds, |key| self.reservations_key(key), at);
                    if let Some(replaced) = leases.insert(key, lease) {
                        self.give_back(replaced);
                    }
                    return Leased::Ask(LEASE_MOST);
                }
            };
            if at >= lease.until
                || !lease
                    .room
                    .iter()
                    .zip(holds)
                    .all(|((_, _, room), (_, amounts))| covers(room, amounts))
            {
                if !ask || lease.exact_until.is_some_and(|until| at < until) {
                    return Leased::Ask(0);
                }
                if lease.awaits_answer(at) {
                    // Registered before the lock goes, so its answer cannot be missed.
                    let mut answer = Box::pin(lease.answered.clone().notified_owned());
                    answer.as_mut().enable();
                    return Leased::Wait(answer);
                }
                lease.asking = Some(at);
                return Leased::Ask(LEASE_MOST);
            }
            let held = lease
                .room
                .iter_mut()
                .zip(holds)
                .map(|((_, hash, room), (_, amounts))| {
                    room.subtract(amounts);
                    (hash.clone(), *amounts)
                })
                .collect();
            // Running low: one request for more, while the room left serves the calls.
            let refill = f64::from(LEASE_REFILL);
            if !lease.awaits_answer(at)
                && !lease
                    .room
                    .iter()
                    .zip(holds)
                    .all(|((_, _, room), (_, amounts))| covers(room, &times(amounts, refill)))
                && let Some(store) = self.me.upgrade()
            {
                lease.asking = Some(at);
                let (checks, holds) = (checks.to_vec(), holds.to_vec());
                tokio::spawn(async move { store.refill(checks, holds).await });
            }
            held
        };
        let local = self.view.try_reserve(now, &[], holds).unwrap_or_default();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.holds().insert(id, Hold::Shared { holds: held, local });
        Leased::Admitted(id)
    }

    /// The answer to a reservation that asked for a lease: `n` more calls' room like its
    /// holds (none when Redis refused or failed), added to the lease serving its calls, up
    /// to [`LEASE_MOST`] calls' room; the rest goes back at once.
    fn leased(&self, checks: &[Check], holds: &[(CounterKey, Amounts)], n: f64) {
        let key = self.lease_key(checks, holds);
        let mut leases = self.leases();
        let Some(lease) = leases
            .get_mut(&key)
            .filter(|lease| lease.serves(checks, holds))
        else {
            drop(leases);
            // Replaced or ended meanwhile: the room goes back.
            if n >= 1.0 {
                let _ = self.ops.send(Op::Release {
                    holds: holds
                        .iter()
                        .map(|(key, amounts)| (self.reservations_key(key), times(amounts, n)))
                        .collect(),
                });
            }
            return;
        };
        lease.asking = None;
        if n < 1.0 {
            lease.answered.notify_waiters();
            lease.exact_until = Some(Instant::now() + self.lease_lifetime);
            return;
        }
        lease.exact_until = None;
        // As many waiting calls as the room serves, and one more to ask for the next: a
        // burst's calls go through a round trip per grant, not all awake at each.
        for _ in 0..=(n as usize).min(LEASE_MOST as usize) {
            lease.answered.notify_one();
        }
        lease.until = Instant::now() + self.lease_lifetime;
        let most = f64::from(LEASE_MOST);
        let mut excess = Vec::new();
        for ((_, hash, room), (_, amounts)) in lease.room.iter_mut().zip(holds) {
            room.add(&times(amounts, n));
            let mut over = *room;
            over.subtract(&times(amounts, most));
            if !over.is_zero() {
                room.subtract(&over);
                excess.push((hash.clone(), over));
            }
        }
        drop(leases);
        if !excess.is_empty() {
            let _ = self.ops.send(Op::Release { holds: excess });
        }
    }

    /// Hands the room left in `lease` to the writer, which takes it off this replica's
    /// fields.
    fn give_back(&self, lease: Lease) {
        lease.answered.notify_waiters();
        let holds: Vec<(String, Amounts)> = lease
            .room
            .into_iter()
            .filter(|(_, _, room)| !room.is_zero())
            .map(|(_, hash, room)| (hash, room))
            .collect();
        if !holds.is_empty() {
            // The writer stops only when the store is dropped.
            let _ = self.ops.send(Op::Release { holds });
        }
    }

    /// Gives back the room of the leases past their lifetime, or of every lease (`all`:
    /// Redis failed, and calls go the failure mode's way until it answers again).
    fn end_leases(&self, all: bool) {
        let now = Instant::now();
        let ended: Vec<Lease> = self
            .leases()
            .extract_if(|_, lease| all || (lease.until <= now && !lease.awaits_answer(now)))
            .map(|(_, lease)| lease)
            .collect();
        for lease in ended {
            self.give_back(lease);
        }
    }

    /// Notes that Redis failed; logs at error level at most every five seconds.
    fn failed(&self, what: &str, error: &redis::RedisError) {
        self.healthy.store(false, Ordering::Relaxed);
        self.end_leases(true);
        let mut last = self
            .last_loud_log
            .lock()
            .expect("log lock is never poisoned");
        if last.is_none_or(|at| at.elapsed() > Duration::from_secs(5)) {
            *last = Some(Instant::now());
            let mode = match self.failure_mode {
                FailureMode::Closed => "fail-closed: calls under a limit are refused",
                FailureMode::Open => {
                    "fail-open: calls are admitted against this replica's local counters"
                }
            };
            tracing::error!(%error, operation = what, mode, "Redis budget counters unreachable");
        }
    }

    /// How the shared counters are doing: degraded while Redis fails, and until the usage
    /// it missed is replayed.
    pub fn health(&self) -> CounterHealth {
        if self.healthy.load(Ordering::Relaxed) && !self.backlog.load(Ordering::Relaxed) {
            CounterHealth::Shared
        } else {
            CounterHealth::Degraded {
                fail_open: self.failure_mode == FailureMode::Open,
            }
        }
    }

    /// Calls admitted against local counters because Redis was away.
    pub fn fail_open_total(&self) -> u64 {
        self.fail_open_total.load(Ordering::Relaxed)
    }

    /// Runs [`RESERVE`] for a call (`own`: its holds) and up to `lease` calls' room beside
    /// them: answers how many calls' room was leased, or the first check that did not fit.
    async fn run_reserve(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
        own: bool,
        lease: u32,
    ) -> Result<Result<f64, CheckFailed>, redis::RedisError> {
        let ttl_ms = i64::try_from(self.reservation_ttl.as_millis()).unwrap_or(i64::MAX);
        let mut invocation = self.reserve_script.prepare_invoke();
        for check in checks {
            invocation
                .key(self.usage_key(&check.key))
                .key(self.reservations_key(&check.key));
        }
        for (key, _) in holds {
            invocation.key(self.reservations_key(key));
        }
        invocation
            .arg(&self.replica)
            .arg(self.alive_prefix())
            .arg(ttl_ms)
            .arg(checks.len())
            .arg(lease)
            .arg(LEASE_SHARE)
            .arg(u8::from(own));
        for check in checks {
            invocation
                .arg(metric_number(check.metric))
                .arg(first_live_bucket(&check.key, now))
                .arg(check.needed)
                .arg(check.value);
        }
        for (_, amounts) in holds {
            invocation
                .arg(amounts.cost_usd)
                .arg(amounts.calls)
                .arg(amounts.input_tokens)
                .arg(amounts.output_tokens);
        }
        let mut connection = self.connection.clone();
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let answer: Vec<redis::Value> = invocation.invoke_async(&mut connection).await?;
        self.healthy.store(true, Ordering::Relaxed);
        let number = |value: Option<&redis::Value>| -> f64 {
            match value {
                Some(redis::Value::Int(n)) => *n as f64,
                Some(redis::Value::BulkString(bytes)) => std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0.0),
                _ => 0.0,
            }
        };
        let failed = number(answer.first()) as usize;
        if failed == 0 {
            return Ok(Ok(number(answer.get(1))));
        }
        let index = failed - 1;
        let check = &checks[index];
        Ok(Err(CheckFailed {
            check: index,
            used: number(answer.get(1)),
            reserved: number(answer.get(2)),
            resets_at: self.view.resets_at(
                now,
                &check.key,
                check.metric,
                check.needed,
                check.value,
            ),
        }))
    }

    /// A call's reservation in Redis, asking for `lease` calls' room beside it.
    async fn reserve_shared(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
        lease: u32,
    ) -> Result<Reserved, redis::RedisError> {
        let answer = self.run_reserve(now, checks, holds, true, lease).await?;
        if lease > 0 {
            self.leased(checks, holds, *answer.as_ref().unwrap_or(&0.0));
        }
        if let Err(failed) = answer {
            return Ok(Err(failed));
        }
        let held = holds
            .iter()
            .map(|(key, amounts)| (self.reservations_key(key), *amounts))
            .collect();
        let local = self.view.try_reserve(now, &[], holds).unwrap_or_default();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.holds().insert(id, Hold::Shared { holds: held, local });
        Ok(Ok(id))
    }

    /// Adds up to [`LEASE_REFILL`] calls' room to the lease serving calls with `checks` and
    /// `holds`, off the request path.
    async fn refill(&self, checks: Vec<Check>, holds: Vec<(CounterKey, Amounts)>) {
        match self
            .run_reserve(Utc::now(), &checks, &holds, false, LEASE_REFILL)
            .await
        {
            Ok(answer) => self.leased(&checks, &holds, answer.unwrap_or(0.0)),
            Err(error) => self.failed("lease", &error),
        }
    }

    /// Reads every counter of the view from Redis and replaces the view's figures.
    /// Also says, for the reservation TTL, that this replica is alive (its holds count).
    async fn refresh(&self) -> Result<(), redis::RedisError> {
        let keys: Vec<CounterKey> = self.view.export().into_iter().map(|(key, _)| key).collect();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(format!("{}{}", self.alive_prefix(), self.replica))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(self.reservation_ttl.as_millis()).unwrap_or(u64::MAX))
            .ignore();
        // While usage waits to be replayed, Redis's figures are short of it: keep the view.
        if keys.is_empty() || self.backlog.load(Ordering::Relaxed) {
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection).await?;
            self.healthy.store(true, Ordering::Relaxed);
            return Ok(());
        }
        for key in &keys {
            pipe.cmd("HGETALL").arg(self.usage_key(key));
            pipe.cmd("HGETALL").arg(self.reservations_key(key));
        }
        let mut connection = self.connection.clone();
        let answers: Vec<HashMap<String, String>> = pipe.query_async(&mut connection).await?;
        self.healthy.store(true, Ordering::Relaxed);
        let now = Utc::now();
        for (key, pair) in keys.iter().zip(answers.chunks(2)) {
            let [usage, reservations] = pair else {
                continue;
            };
            let totals = totals_from_hash(key, now, usage);
            // Every replica's holds, dead ones' included until a check deletes them: the
            // view is for reading (and for fail-open, where more held is the safe side).
            let mut reserved = Amounts::default();
            for entry in reservations.values() {
                let parts: Vec<f64> = entry.split('|').filter_map(|p| p.parse().ok()).collect();
                if let [cost, calls, input, output] = parts[..] {
                    reserved.add(&Amounts {
                        cost_usd: cost,
                        calls,
                        input_tokens: input,
                        output_tokens: output,
                    });
                }
            }
            self.view.replace(key, totals, reserved);
        }
        Ok(())
    }
}

/// The metric's number in [`RESERVE`].
fn metric_number(metric: Metric) -> u8 {
    match metric {
        Metric::Cost => 1,
        Metric::Calls => 2,
        Metric::InputTokens => 3,
        Metric::OutputTokens => 4,
        Metric::TotalTokens => 5,
    }
}

/// The field names of `amounts`' metrics in a usage hash, in bucket `bucket`.
fn metric_fields(bucket: i64, amounts: &Amounts) -> [(String, f64); 4] {
    [
        (format!("{bucket}:c"), amounts.cost_usd),
        (format!("{bucket}:n"), amounts.calls),
        (format!("{bucket}:i"), amounts.input_tokens),
        (format!("{bucket}:o"), amounts.output_tokens),
    ]
}

/// The bucket that usage at `at` belongs to in `key`'s window.
fn bucket_of(key: &CounterKey, at: DateTime<Utc>) -> i64 {
    match key.window {
        Window::Calendar(period) => calendar_window(period, key.zone, at).0.timestamp(),
        Window::Rolling { seconds } => {
            let width = limits::signed_seconds(rolling_bucket_seconds(seconds));
            at.timestamp().div_euclid(width).saturating_mul(width)
        }
    }
}

/// The oldest bucket still counted in `key`'s window at `now` (as
/// [`WindowTotals::used`] counts them).
fn first_live_bucket(key: &CounterKey, now: DateTime<Utc>) -> i64 {
    match key.window {
        Window::Calendar(period) => calendar_window(period, key.zone, now).0.timestamp(),
        Window::Rolling { seconds } => {
            let width = limits::signed_seconds(rolling_bucket_seconds(seconds));
            now.timestamp()
                .saturating_sub(limits::signed_seconds(seconds))
                .saturating_sub(width)
                .saturating_add(1)
        }
    }
}

/// A usage hash as window totals at `now`.
fn totals_from_hash(
    key: &CounterKey,
    now: DateTime<Utc>,
    usage: &HashMap<String, String>,
) -> WindowTotals {
    let first = first_live_bucket(key, now);
    let mut totals = WindowTotals::new(key.window);
    for (field, value) in usage {
        let Some((bucket, metric)) = field.rsplit_once(':') else {
            continue;
        };
        let (Ok(bucket), Ok(value)) = (bucket.parse::<i64>(), value.parse::<f64>()) else {
            continue;
        };
        if bucket < first {
            continue;
        }
        let mut amounts = Amounts::default();
        match metric {
            "c" => amounts.cost_usd = value,
            "n" => amounts.calls = value,
            "i" => amounts.input_tokens = value,
            "o" => amounts.output_tokens = value,
            _ => continue,
        }
        let at = DateTime::from_timestamp(bucket, 0).unwrap_or(now);
        totals.add(key.window, key.zone, at, &amounts);
    }
    totals
}

/// One pipeline for a batch of detached operations: the usage first, summed per usage hash
/// field (one `HINCRBYFLOAT` per field and one `EXPIRE` per hash, however many calls), then
/// every release in one call of [`RELEASE`]. Usage moves ahead of releases handed over
/// before it, never behind: a call's spend is counted before its hold goes, so a check in
/// between sees both (conservative) rather than neither.
fn batch(store: &RedisCounterStore, pending: &[Op]) -> redis::Pipeline {
    // Summed per counter and bucket first (hashing, no text), named once per sum after.
    let mut sums: HashMap<(&CounterKey, i64), Amounts> = HashMap::new();
    let mut releases: std::collections::BTreeMap<&String, Amounts> = Default::default();
    for op in pending {
        match op {
            Op::Add { at, keys, amounts } => {
                for key in keys {
                    sums.entry((key, bucket_of(key, *at)))
                        .or_default()
                        .add(amounts);
                }
            }
            Op::Release { holds } => {
                for (key, amounts) in holds {
                    releases.entry(key).or_default().add(amounts);
                }
            }
        }
    }
    // Each (counter, bucket) sum names its own fields: they are distinct already.
    let mut pipe = redis::pipe();
    let mut keep: HashMap<String, u64> = HashMap::new();
    for ((key, bucket), amounts) in &sums {
        let usage_key = store.usage_key(key);
        for (field, value) in metric_fields(*bucket, amounts) {
            if value != 0.0 {
                pipe.cmd("HINCRBYFLOAT")
                    .arg(&usage_key)
                    .arg(field)
                    .arg(value)
                    .ignore();
            }
        }
        let seconds = key.window.max_seconds().saturating_mul(2).max(3_600);
        keep.insert(usage_key, seconds);
    }
    for (usage_key, seconds) in &keep {
        pipe.cmd("EXPIRE").arg(usage_key).arg(seconds).ignore();
    }
    if !releases.is_empty() {
        // Loaded in every batch that uses it (idempotent, a few µs): a Redis restarted
        // between two batches has no scripts, and a failed `EVALSHA` in a pipeline would
        // leave the usage before it counted and then sent again.
        pipe.load_script(&store.release_script).ignore();
        pipe.invoke_script(&release_all(
            &store.release_script,
            &store.replica,
            releases.iter().map(|(key, amounts)| (*key, amounts)),
        ))
        .ignore();
    }
    pipe
}

/// Sends detached operations to Redis in order, as pipelines; what could not be sent is
/// retried. Releases too: after a short outage this replica's field still holds them, and
/// after a restart that lost it they take nothing off (a field never goes below zero),
/// reservations meanwhile going the failure mode's way until the backlog is sent.
async fn write_detached(store: Weak<RedisCounterStore>, mut ops: mpsc::UnboundedReceiver<Op>) {
    let mut pending: Vec<Op> = Vec::new();
    loop {
        if pending.is_empty() {
            match ops.recv().await {
                Some(op) => pending.push(op),
                None => return,
            }
            // The rest gathers in the channel meanwhile: no wake-up per operation.
            tokio::time::sleep(LINGER).await;
        }
        while pending.len() < BATCH {
            match ops.try_recv() {
                Ok(op) => pending.push(op),
                Err(_) => break,
            }
        }
        let Some(store) = store.upgrade() else {
            return;
        };
        let pipe = batch(&store, &pending);
        let mut connection = store.connection.clone();
        match pipe.query_async::<()>(&mut connection).await {
            Ok(()) => {
                pending.clear();
                store.backlog.store(false, Ordering::Relaxed);
            }
            Err(error) => {
                store.backlog.store(true, Ordering::Relaxed);
                store.failed("add usage", &error);
                if pending.len() > MAX_PENDING_OPS {
                    let dropped = pending.len() - MAX_PENDING_OPS;
                    pending.drain(..dropped);
                    tracing::error!(
                        dropped,
                        "Redis away too long: usage and releases not yet sent to the shared budget counters were dropped"
                    );
                }
                drop(store);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Refreshes the local view, and the replica's liveness, every [`REFRESH_EVERY`] (a third of
/// the reservation TTL when that is shorter) while the store lives.
async fn refresh_view(store: Weak<RedisCounterStore>) {
    // Often enough that the liveness key never lapses while the replica runs.
    let ttl = match store.upgrade() {
        Some(store) => store.reservation_ttl,
        None => return,
    };
    let period = REFRESH_EVERY.min(ttl / 3).max(Duration::from_millis(50));
    let mut every = tokio::time::interval(period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(store) = store.upgrade() else {
            return;
        };
        store.end_leases(false);
        if let Err(error) = store.refresh().await {
            store.failed("refresh", &error);
        }
    }
}

impl CounterStore for RedisCounterStore {
    fn reserve<'a>(
        &'a self,
        now: DateTime<Utc>,
        checks: &'a [Check],
        holds: &'a [(CounterKey, Amounts)],
    ) -> StoreFuture<'a, Result<Reserved, CounterError>> {
        Box::pin(async move {
            // Redis is short of usage it missed until the backlog is replayed: not trusted.
            let shared = if self.backlog.load(Ordering::Relaxed) {
                None
            } else {
                // Leases only while Redis answers (a failure gave their room back).
                let lease = if self.healthy.load(Ordering::Relaxed) {
                    match self.reserve_leased(now, checks, holds, true) {
                        Leased::Admitted(id) => return Ok(Ok(id)),
                        Leased::Ask(lease) => lease,
                        Leased::Wait(mut answer) => {
                            // Each answer serves some of the calls waiting; the others wait
                            // for the next, up to LEASE_WAIT in all.
                            let deadline = tokio::time::Instant::now() + LEASE_WAIT;
                            loop {
                                if tokio::time::timeout_at(deadline, answer).await.is_err() {
                                    break 0;
                                }
                                match self.reserve_leased(now, checks, holds, true) {
                                    Leased::Admitted(id) => return Ok(Ok(id)),
                                    Leased::Ask(lease) => break lease,
                                    Leased::Wait(next) => answer = next,
                                }
                            }
                        }
                    }
                } else {
                    0
                };
                Some(self.reserve_shared(now, checks, holds, lease).await)
            };
            match shared {
                // Refused, but a lease another call asked for may have brought room since.
                Some(Ok(Err(failed))) => match self.reserve_leased(now, checks, holds, false) {
                    Leased::Admitted(id) => Ok(Ok(id)),
                    _ => Ok(Err(failed)),
                },
                Some(Ok(reserved)) => Ok(reserved),
                failed => {
                    if let Some(Err(error)) = failed {
                        self.failed("reserve", &error);
                    }
                    match self.failure_mode {
                        FailureMode::Closed => Err(CounterError(
                            "the Redis budget counters do not answer".to_owned(),
                        )),
                        FailureMode::Open => {
                            self.fail_open_total.fetch_add(1, Ordering::Relaxed);
                            let local = match self.view.try_reserve(now, checks, holds) {
                                Ok(local) => local,
                                Err(failed) => return Ok(Err(failed)),
                            };
                            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                            self.holds().insert(id, Hold::Local(local));
                            Ok(Ok(id))
                        }
                    }
                }
            }
        })
    }

    fn release(&self, reservation: ReservationId) -> StoreFuture<'_, Result<(), CounterError>> {
        let hold = self.holds().remove(&reservation);
        Box::pin(async move {
            match hold {
                None => Ok(()),
                Some(Hold::Local(local)) => {
                    self.view.release_now(local);
                    Ok(())
                }
                Some(Hold::Shared { holds, local }) => {
                    self.view.release_now(local);
                    let mut connection = self.connection.clone();
                    release_all(
                        &self.release_script,
                        &self.replica,
                        holds.iter().map(|(key, amounts)| (key, amounts)),
                    )
                    .invoke_async::<()>(&mut connection)
                    .await
                    .map_err(|error| CounterError(error.to_string()))
                }
            }
        })
    }

    fn add<'a>(
        &'a self,
        at: DateTime<Utc>,
        keys: &'a [CounterKey],
        amounts: &'a Amounts,
    ) -> StoreFuture<'a, Result<(), CounterError>> {
        Box::pin(async move {
            self.view.add_now(at, keys, amounts);
            let mut pipe = redis::pipe();
            for key in keys {
                for (field, value) in metric_fields(bucket_of(key, at), amounts) {
                    if value != 0.0 {
                        pipe.cmd("HINCRBYFLOAT")
                            .arg(self.usage_key(key))
                            .arg(field)
                            .arg(value)
                            .ignore();
                    }
                }
            }
            let mut connection = self.connection.clone();
            pipe.query_async::<()>(&mut connection)
                .await
                .map_err(|error| CounterError(error.to_string()))
        })
    }

    fn release_detached(&self, reservation: ReservationId) {
        match self.holds().remove(&reservation) {
            None => {}
            Some(Hold::Local(local)) => self.view.release_now(local),
            Some(Hold::Shared { holds, local }) => {
                self.view.release_now(local);
                // The writer stops only when the store is dropped; then nothing is held.
                let _ = self.ops.send(Op::Release { holds });
            }
        }
    }

    fn add_detached(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts) {
        self.view.add_now(at, keys, amounts);
        let _ = self.ops.send(Op::Add {
            at,
            keys: keys.to_vec(),
            amounts: *amounts,
        });
    }

    fn read(&self, now: DateTime<Utc>, key: &CounterKey) -> CounterReading {
        self.view.read(now, key)
    }

    fn resets_at(
        &self,
        now: DateTime<Utc>,
        key: &CounterKey,
        metric: Metric,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc> {
        self.view.resets_at(now, key, metric, needed, value)
    }

    fn merge(&self, key: &CounterKey, totals: &WindowTotals) {
        // Redis keeps the shared totals; a scan of this replica's log only fills the view
        // until the next refresh.
        self.view.merge(key, totals);
    }

    fn export(&self) -> Vec<(CounterKey, WindowTotals)> {
        self.view.export()
    }

    fn contains(&self, key: &CounterKey) -> bool {
        self.view.contains(key)
    }

    fn register(&self, key: &CounterKey) {
        self.view.register(key);
    }

    fn retain(&self, keep: &(dyn Fn(&CounterKey) -> bool + Sync)) {
        self.view.retain(keep);
    }

    fn health(&self) -> CounterHealth {
        RedisCounterStore::health(self)
    }

    fn fail_open_total(&self) -> u64 {
        RedisCounterStore::fail_open_total(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerly_core::limits::Scope;

    fn key(scope: &str, window: &str) -> CounterKey {
        CounterKey {
            scope: Scope::parse(scope).expect("scope"),
            window: Window::parse(window).expect("window"),
            zone: chrono_tz::Tz::UTC,
        }
    }

    fn cost(usd: f64) -> Amounts {
        Amounts {
            cost_usd: usd,
            calls: 1.0,
            ..Amounts::default()
        }
    }

    fn checks(window: &str, usd: f64) -> Vec<Check> {
        vec![
            Check {
                key: key("global", window),
                metric: Metric::Cost,
                value: 10.0,
                needed: usd,
            },
            Check {
                key: key("project:p1", window),
                metric: Metric::Cost,
                value: 3.0,
                needed: usd,
            },
        ]
    }

    fn holds(window: &str, usd: f64) -> Vec<(CounterKey, Amounts)> {
        vec![
            (key("global", window), cost(usd)),
            (key("project:p1", window), cost(usd)),
        ]
    }

    /// The semantics every counter store keeps: all-or-nothing reservations, usage counted
    /// against later ones, idempotent release.
    async fn reservation_semantics(store: &dyn CounterStore, window: &str) {
        let now = Utc::now();
        let first = store
            .reserve(now, &checks(window, 2.0), &holds(window, 2.0))
            .await
            .expect("store answers")
            .expect("fits");
        let refused = store
            .reserve(now, &checks(window, 2.0), &holds(window, 2.0))
            .await
            .expect("store answers")
            .expect_err("the project has 1 USD of room left");
        assert_eq!(
            (refused.check, refused.used, refused.reserved),
            (1, 0.0, 2.0)
        );
        store
            .add(
                now,
                &[key("global", window), key("project:p1", window)],
                &cost(1.5),
            )
            .await
            .expect("add");
        store.release(first).await.expect("release");
        store.release(first).await.expect("release is idempotent");
        let second = store
            .reserve(now, &checks(window, 1.5), &holds(window, 1.5))
            .await
            .expect("store answers")
            .expect("1.5 used + 1.5 fits under 3");
        let refused = store
            .reserve(now, &checks(window, 0.1), &holds(window, 0.1))
            .await
            .expect("store answers")
            .expect_err("full");
        assert_eq!((refused.used, refused.reserved), (1.5, 1.5));
        store.release(second).await.expect("release");
    }

    #[tokio::test]
    async fn the_memory_store_keeps_the_semantics() {
        let store = MemoryCounterStore::new();
        reservation_semantics(&store, "daily").await;
        reservation_semantics(&MemoryCounterStore::new(), "1h").await;
    }

    /// A store on the machine's Redis under a prefix of its own, deleted afterwards.
    struct TestRedis {
        prefix: String,
        connection: ConnectionManager,
    }

    impl TestRedis {
        async fn new() -> Self {
            let prefix = format!("routerly-test-{}", uuid::Uuid::new_v4().simple());
            let client = redis::Client::open("redis://127.0.0.1:6379/").expect("url");
            let connection = ConnectionManager::new(client)
                .await
                .expect("the machine's Redis runs on 127.0.0.1:6379");
            TestRedis { prefix, connection }
        }

        fn store(&self, ttl: Duration) -> Arc<RedisCounterStore> {
            RedisCounterStore::open(RedisSettings {
                url: "redis://127.0.0.1:6379/".to_owned(),
                prefix: self.prefix.clone(),
                failure_mode: FailureMode::Closed,
                reservation_ttl: ttl,
            })
            .expect("open")
        }

        async fn clean(mut self) {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.prefix))
                .query_async(&mut self.connection)
                .await
                .expect("keys");
            if !keys.is_empty() {
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut self.connection)
                    .await
                    .expect("del");
            }
        }
    }

    #[tokio::test]
    async fn a_replicas_holds_are_one_summed_field_per_counter() {
        let redis = TestRedis::new().await;
        let store = redis.store(Duration::from_secs(60));
        let now = Utc::now();
        let mut held = Vec::new();
        for _ in 0..30 {
            held.push(
                store
                    .reserve(now, &checks("daily", 0.05), &holds("daily", 0.05))
                    .await
                    .expect("answers")
                    .expect("fits"),
            );
        }
        let hash = store.reservations_key(&key("project:p1", "daily"));
        let fields = |connection: &ConnectionManager| {
            let (mut connection, hash) = (connection.clone(), hash.clone());
            async move {
                let fields: usize = redis::cmd("HLEN")
                    .arg(&hash)
                    .query_async(&mut connection)
                    .await
                    .expect("reads");
                fields
            }
        };
        let sums = field_of(&redis.connection, &hash, &store.replica)
            .await
            .expect("the replica's field");
        assert_eq!(fields(&redis.connection).await, 1, "one field for 30 holds");
        assert!((sums[0] - 1.5).abs() < 1e-9 && sums[1] == 30.0, "{sums:?}");
        // 1.5 of the project's 3 held: 1.5 more fits exactly, then nothing.
        let refused = store
            .reserve(now, &checks("daily", 1.6), &holds("daily", 1.6))
            .await
            .expect("answers")
            .expect_err("1.5 + 1.6 > 3");
        assert!((refused.reserved - 1.5).abs() < 1e-9, "{refused:?}");
        for id in held.drain(..29) {
            store.release(id).await.expect("release");
        }
        let sums = field_of(&redis.connection, &hash, &store.replica)
            .await
            .expect("one hold left");
        assert!((sums[0] - 0.05).abs() < 1e-9 && sums[1] == 1.0, "{sums:?}");
        store.release(held[0]).await.expect("release");
        assert_eq!(
            (
                field_of(&redis.connection, &hash, &store.replica).await,
                fields(&redis.connection).await
            ),
            (None, 0),
            "an emptied field goes (no rounding carried over)"
        );
        redis.clean().await;
    }

    /// This replica's field of `hash` as its four sums (`None` when it has none).
    async fn field_of(
        connection: &ConnectionManager,
        hash: &str,
        replica: &str,
    ) -> Option<Vec<f64>> {
        let entry: Option<String> = redis::cmd("HGET")
            .arg(hash)
            .arg(replica)
            .query_async(&mut connection.clone())
            .await
            .expect("reads");
        entry.map(|entry| {
            entry
                .split('|')
                .map(|part| part.parse().expect("number"))
                .collect()
        })
    }

    #[tokio::test]
    async fn a_limit_far_from_full_is_leased_and_the_lease_spent_without_round_trips() {
        let redis = TestRedis::new().await;
        let store = redis.store(Duration::from_secs(3));
        let now = Utc::now();
        // Room for 100,000 calls of 0.01: the first reservation leases 128 more calls' room.
        let far = |usd: f64| {
            let mut checks = checks("daily", usd);
            checks[0].value = 10_000.0;
            checks[1].value = 1_000.0;
            checks
        };
        let hash = store.reservations_key(&key("project:p1", "daily"));
        let reserve = |checks: Vec<Check>| {
            let store = store.clone();
            async move {
                let id = store
                    .reserve(now, &checks, &holds("daily", 0.01))
                    .await
                    .expect("answers")
                    .expect("fits");
                // A refill asked for meanwhile runs.
                tokio::time::sleep(Duration::from_millis(2)).await;
                id
            }
        };
        let mut held = vec![reserve(far(0.01)).await];
        let sums = field_of(&redis.connection, &hash, &store.replica)
            .await
            .expect("field");
        assert!(
            (sums[0] - 1.29).abs() < 1e-9 && sums[1] == 129.0,
            "the call's hold and 128 calls' room: {sums:?}"
        );
        for _ in 1..1_000 {
            held.push(reserve(far(0.01)).await);
        }
        // One reservation, then a refill of 64 calls' room whenever fewer than 64 were left.
        let trips = store.round_trips.load(Ordering::Relaxed);
        assert!(
            (12..=20).contains(&trips),
            "{trips} round trips for 1,000 calls"
        );
        // Every call's hold is in Redis, and at most 128 calls' room beside them.
        let sums = field_of(&redis.connection, &hash, &store.replica)
            .await
            .expect("field");
        assert!(
            sums[0] >= 10.0 - 1e-9 && sums[0] <= 11.28 + 1e-9,
            "1,000 holds of 0.01 and the lease: {sums:?}"
        );
        // A call with other limits (a value changed) is not served by that lease.
        let mut changed = far(0.01);
        changed[1].value = 999.0;
        held.push(reserve(changed).await);
        assert_eq!(store.round_trips.load(Ordering::Relaxed), trips + 1);
        // Released calls go; the leases' room goes when their lifetime (a second) ends.
        for id in held {
            store.release(id).await.expect("release");
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while field_of(&redis.connection, &hash, &store.replica)
            .await
            .is_some()
        {
            assert!(
                Instant::now() < deadline,
                "the leases' room was not given back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        redis.clean().await;
    }

    #[tokio::test]
    async fn a_redis_failure_gives_the_leased_room_back_at_once() {
        let redis = TestRedis::new().await;
        let store = redis.store(Duration::from_secs(60));
        let mut far = checks("daily", 0.01);
        far[0].value = 10_000.0;
        far[1].value = 1_000.0;
        let id = store
            .reserve(Utc::now(), &far, &holds("daily", 0.01))
            .await
            .expect("answers")
            .expect("fits");
        let hash = store.reservations_key(&key("project:p1", "daily"));
        let sums = field_of(&redis.connection, &hash, &store.replica).await;
        assert_eq!(
            sums.map(|sums| sums[1]),
            Some(129.0),
            "the call and its lease"
        );
        // A failed operation: calls follow the failure mode, and the lease's room goes back
        // well before its lifetime (60 s TTL: a second) would end it.
        store.failed(
            "test",
            &redis::RedisError::from((redis::ErrorKind::Io, "test")),
        );
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            let sums = field_of(&redis.connection, &hash, &store.replica).await;
            if sums.as_ref().map(|sums| sums[1]) == Some(1.0) {
                break;
            }
            assert!(Instant::now() < deadline, "the lease still held: {sums:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        store.release(id).await.expect("release");
        redis.clean().await;
    }

    #[tokio::test]
    async fn leases_never_let_replicas_past_a_limit_and_leave_a_stated_share_unused() {
        let redis = TestRedis::new().await;
        let replicas = [
            redis.store(Duration::from_secs(3)),
            redis.store(Duration::from_secs(3)),
            redis.store(Duration::from_secs(3)),
        ];
        let now = Utc::now();
        // Exactly 2,000 calls of 2^-7 USD fit (binary fractions: no rounding).
        let call = 0.0078125;
        let limit = |usd: f64| {
            let mut checks = checks("daily", usd);
            checks[0].value = 1e9;
            checks[1].value = 2_000.0 * call;
            checks
        };
        let attempts = (0..6_000).map(|n| {
            let store = &replicas[n % 3];
            async move {
                store
                    .reserve(now, &limit(call), &holds("daily", call))
                    .await
                    .expect("answers")
                    .is_ok()
            }
        });
        let admitted = futures_util::future::join_all(attempts)
            .await
            .into_iter()
            .filter(|admitted| *admitted)
            .count();
        // Never above the limit; below it by at most what the other replicas' leases hold,
        // 128 calls each.
        assert!(
            (2_000 - 2 * LEASE_MOST as usize..=2_000).contains(&admitted),
            "{admitted} admitted"
        );
        // Once the leases end, their room is anyone's: exactly the rest fits.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let late = redis.store(Duration::from_secs(3));
        let mut more = 0;
        while late
            .reserve(Utc::now(), &limit(call), &holds("daily", call))
            .await
            .expect("answers")
            .is_ok()
        {
            more += 1;
        }
        assert_eq!(admitted + more, 2_000);
        redis.clean().await;
    }

    #[tokio::test]
    async fn a_batch_of_detached_usage_and_releases_is_summed_and_released_whole() {
        let mut redis = TestRedis::new().await;
        let store = redis.store(Duration::from_secs(60));
        let now = Utc::now();
        let project = key("project:p1", "daily");
        let mut held = Vec::new();
        for _ in 0..20 {
            held.push(
                store
                    .reserve(now, &checks("daily", 0.1), &holds("daily", 0.1))
                    .await
                    .expect("answers")
                    .expect("fits"),
            );
        }
        // Settled as a busy replica does: usage and releases handed over together, sent
        // as one batch (or a few) of summed fields and one release script call.
        for id in held {
            store.add_detached(now, &[key("global", "daily"), project.clone()], &cost(0.05));
            store.release_detached(id);
        }
        // A restarted Redis has no scripts: the writer loads the release script again.
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async::<()>(&mut redis.connection)
            .await
            .expect("flush");
        let late = store
            .reserve(now, &checks("daily", 0.1), &holds("daily", 0.1))
            .await
            .expect("answers")
            .expect("fits");
        store.release_detached(late);
        let usage = store.usage_key(&project);
        let hash = store.reservations_key(&project);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (spent, calls, holds_left): (Option<f64>, Option<f64>, usize) = redis::pipe()
                .cmd("HGET")
                .arg(&usage)
                .arg(format!("{}:c", bucket_of(&project, now)))
                .cmd("HGET")
                .arg(&usage)
                .arg(format!("{}:n", bucket_of(&project, now)))
                .cmd("HLEN")
                .arg(&hash)
                .query_async(&mut redis.connection)
                .await
                .expect("reads");
            if holds_left == 0 && calls == Some(20.0) {
                assert!((spent.expect("spent") - 1.0).abs() < 1e-9, "{spent:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not settled: {spent:?} {calls:?} {holds_left} holds"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis.clean().await;
    }

    #[tokio::test]
    async fn the_redis_store_keeps_the_semantics_across_replicas() {
        let redis = TestRedis::new().await;
        reservation_semantics(redis.store(Duration::from_secs(60)).as_ref(), "daily").await;
        reservation_semantics(redis.store(Duration::from_secs(60)).as_ref(), "1h").await;
        // Two replicas share the counters: room taken on one is gone on the other.
        let (a, b) = (
            redis.store(Duration::from_secs(60)),
            redis.store(Duration::from_secs(60)),
        );
        let now = Utc::now();
        a.reserve(now, &checks("monthly", 2.0), &holds("monthly", 2.0))
            .await
            .expect("answers")
            .expect("fits");
        b.reserve(now, &checks("monthly", 2.0), &holds("monthly", 2.0))
            .await
            .expect("answers")
            .expect_err("a holds 2 of the project's 3");
        // Detached usage lands in order, and the view of a counter it knows (Budgets
        // registers every limit's) catches up within a refresh.
        a.register(&key("project:p1", "monthly"));
        b.add_detached(now, &[key("project:p1", "monthly")], &cost(0.5));
        tokio::time::sleep(REFRESH_EVERY * 2).await;
        let reading = a.read(Utc::now(), &key("project:p1", "monthly"));
        assert_eq!(
            (reading.used.cost_usd, reading.reserved.cost_usd),
            (0.5, 2.0)
        );
        redis.clean().await;
    }

    #[tokio::test]
    async fn a_dead_replicas_reservations_expire() {
        let redis = TestRedis::new().await;
        let dead = redis.store(Duration::from_secs(1));
        let now = Utc::now();
        dead.reserve(now, &checks("daily", 3.0), &holds("daily", 3.0))
            .await
            .expect("answers")
            .expect("fits");
        // Never released: the replica "dies" holding it (its tasks stop, so nothing says
        // it is alive any more).
        drop(dead);
        let alive = redis.store(Duration::from_secs(60));
        alive
            .reserve(Utc::now(), &checks("daily", 1.0), &holds("daily", 1.0))
            .await
            .expect("answers")
            .expect_err("held by the dead replica");
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        alive
            .reserve(Utc::now(), &checks("daily", 1.0), &holds("daily", 1.0))
            .await
            .expect("answers")
            .expect("the dead replica's hold expired");
        redis.clean().await;
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_closed_or_open() {
        let settings = |failure_mode| RedisSettings {
            // Nothing listens on port 1 of loopback.
            url: "redis://127.0.0.1:1/".to_owned(),
            prefix: "unused".to_owned(),
            failure_mode,
            reservation_ttl: Duration::from_secs(60),
        };
        let closed = RedisCounterStore::open(settings(FailureMode::Closed)).expect("open");
        let now = Utc::now();
        assert!(
            closed
                .reserve(now, &checks("daily", 1.0), &holds("daily", 1.0))
                .await
                .is_err()
        );
        assert_eq!(
            closed.health(),
            CounterHealth::Degraded { fail_open: false }
        );
        let open = RedisCounterStore::open(settings(FailureMode::Open)).expect("open");
        let held = open
            .reserve(now, &checks("daily", 2.0), &holds("daily", 2.0))
            .await
            .expect("fail-open answers")
            .expect("fits locally");
        open.reserve(now, &checks("daily", 2.0), &holds("daily", 2.0))
            .await
            .expect("fail-open answers")
            .expect_err("local counters still limit: never silently unlimited");
        assert_eq!(open.fail_open_total(), 2);
        open.release(held).await.expect("local release");
        assert_eq!(
            open.read(now, &key("project:p1", "daily"))
                .reserved
                .cost_usd,
            0.0
        );
    }
}
