//! The Lua scripts that make each multi-key step atomic in Redis. `redis::Script` runs them
//! with EVALSHA and loads them again after a Redis restart (NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

/// Takes a free lease: `SET owner token NX PX lease`. KEYS: owner; ARGV: token, lease_ms.
/// Returns 1 when taken.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
",
    )
});

/// Extends a lease only while it is still ours. KEYS: owner; ARGV: token, lease_ms.
/// Returns 1 when renewed, 0 when another node (or nobody) holds it.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
",
    )
});

/// Takes a lease whoever holds it (the node taking a room's broadcast in becomes its owner, so
/// the CDN files follow the broadcast's session). KEYS: owner; ARGV: token, lease_ms. The old
/// holder is fenced off at its next publish or renewal.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
",
    )
});

/// Gives a lease back only if it is still ours. KEYS: owner; ARGV: token.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
",
    )
});

/// The fenced publish of a batch. KEYS: owner, seq, events. ARGV: token, first, last,
/// maxlen, then the entry's field/value pairs. Only the lease holder may append, and only
/// after the stored seq: the stored seq and the entry are written together.
/// Returns {1, id} when appended, {0, 0} when the lease is not ours, {2, seq} when the batch
/// starts at or below the stored seq (another node went further; continue after it).
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {0, 0} end
local stored = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) <= stored then return {2, stored} end
redis.call('SET', KEYS[2], ARGV[3])
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(fields))
return {1, id}
",
    )
});

/// Raises the stored seq to at least ARGV[1] (a node rejoining after an outage numbered
/// events on its own; the room continues after the highest). KEYS: seq. Returns the seq.
pub(crate) static RAISE_SEQ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > stored then
  redis.call('SET', KEYS[1], ARGV[1])
  return wanted
end
return stored
",
    )
});

/// GCRA over several limiters at once, on Redis's clock (nodes' clocks may differ).
/// KEYS: the limiters; ARGV: per key its emission interval and burst, in microseconds and
/// cells. Keys are checked in order and a cell taken by an earlier key stays taken (as the
/// local layers do). Returns {0, 0} when every key allows, else {i, wait_us} for the first
/// key that refuses.
pub(crate) static GCRA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - burst * interval
  if now < allow_at then return {i, math.ceil(allow_at - now)} end
  redis.call('SET', key, string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
end
return {0, 0}
",
    )
});

/// Runs a lease script ([`ACQUIRE`], [`RENEW`], [`CLAIM`]: KEYS the lease key, ARGV token and
/// lease_ms) and returns its number.
pub(crate) async fn lease<C: redis::aio::ConnectionLike + Send>(
    script: &Script,
    key: &str,
    token: &str,
    lease_ms: u64,
    conn: &mut C,
) -> redis::RedisResult<i64> {
    script
        .key(key)
        .arg(token)
        .arg(lease_ms)
        .invoke_async(conn)
        .await
}

#[cfg(test)]
mod tests {
    //! The scripts against the machine's Redis (`BARRAGE_TEST_REDIS`), under a prefix of
    //! their own: the fence that stops a stale owner, seq raising, and the shared GCRA.

    use super::*;
    use crate::testutil::{redis_cleanup, redis_prefix, redis_url, require_redis};

    async fn conn(url: &str) -> redis::aio::MultiplexedConnection {
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn only_the_lease_holder_publishes_and_only_after_the_stored_seq() {
        let url = redis_url();
        require_redis(&url).await;
        let p = redis_prefix("scripts");
        let mut c = conn(&url).await;
        let (owner, seq, events) = (format!("{p}:o"), format!("{p}:s"), format!("{p}:e"));
        let publish = |token: &'static str, first: u64, last: u64| {
            let mut inv = PUBLISH.prepare_invoke();
            inv.key(&owner).key(&seq).key(&events);
            inv.arg(token)
                .arg(first)
                .arg(last)
                .arg(100)
                .arg("f")
                .arg("v");
            inv
        };
        let taken = lease(&ACQUIRE, &owner, "a", 5000, &mut c).await.unwrap();
        assert_eq!(taken, 1);
        let again = lease(&ACQUIRE, &owner, "b", 5000, &mut c).await.unwrap();
        assert_eq!(again, 0, "a held lease is not taken");
        let (code, _): (i64, redis::Value) = publish("a", 1, 3).invoke_async(&mut c).await.unwrap();
        assert_eq!(code, 1, "the holder appends");
        let (code, stored): (i64, u64) = publish("a", 2, 4).invoke_async(&mut c).await.unwrap();
        assert_eq!(
            (code, stored),
            (2, 3),
            "a batch at or below the stored seq is refused"
        );
        let (code, _): (i64, i64) = publish("b", 4, 4).invoke_async(&mut c).await.unwrap();
        assert_eq!(code, 0, "a stale owner is fenced off");
        let renewed = lease(&RENEW, &owner, "b", 5000, &mut c).await.unwrap();
        assert_eq!(renewed, 0, "only the holder renews");
        let released: i64 = RELEASE
            .key(&owner)
            .arg("b")
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(released, 0, "only the holder releases");
        let raised: u64 = RAISE_SEQ
            .key(&seq)
            .arg(10)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(raised, 10);
        let kept: u64 = RAISE_SEQ
            .key(&seq)
            .arg(7)
            .invoke_async(&mut c)
            .await
            .unwrap();
        assert_eq!(kept, 10, "the seq never goes down");
        let len: u64 = redis::cmd("XLEN")
            .arg(&events)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(len, 1, "one entry: only the accepted publish");
        redis_cleanup(&url, &p).await;
    }

    #[tokio::test]
    async fn the_shared_gcra_allows_the_burst_then_refuses_with_a_wait() {
        let url = redis_url();
        require_redis(&url).await;
        let p = redis_prefix("gcra");
        let mut c = conn(&url).await;
        let check = || {
            let mut inv = GCRA.prepare_invoke();
            // User: 1 per second, burst 2. Room: 1 per 10 ms, burst 100.
            inv.key(format!("{p}:u")).key(format!("{p}:r"));
            inv.arg(1_000_000).arg(2).arg(10_000).arg(100);
            inv
        };
        for _ in 0..2 {
            let v: (i64, i64) = check().invoke_async(&mut c).await.unwrap();
            assert_eq!(v, (0, 0));
        }
        let (which, wait_us): (i64, i64) = check().invoke_async(&mut c).await.unwrap();
        assert_eq!(which, 1, "the user layer refuses");
        assert!(wait_us > 0 && wait_us <= 1_000_000, "{wait_us}");
        redis_cleanup(&url, &p).await;
    }
}
