//! The Lua scripts the store runs, and `run_script`, which runs one by its hash.

use deadpool_redis::redis;

use super::Conn;

/// Lua for the scripts that read our keys with `redis.pcall`: `foreign(reply)` is true for a
/// key of another Redis type (`WRONGTYPE`: a foreign writer under the key prefix), false for a
/// value, and raises any other refusal (an ACL's `NOPERM`), which ends the script as its error.
macro_rules! foreign {
    () => {
        "local function foreign(reply)
  if type(reply) ~= 'table' then
    return false
  end
  if string.sub(reply.err, 1, 9) ~= 'WRONGTYPE' then
    error(reply)
  end
  return true
end
"
    };
}

/// One atomic step for the whole state change of an exchange, so that of any number of
/// concurrent requests for one code, on any number of replicas, exactly one sees the record:
/// take the code and write the token record; or, when the code is gone, report the `jti` of
/// the token issued for it. The token record's key follows from the code (see [`keys`]), so it
/// is the replay marker too: one new key per exchange. Its two keys share one hash slot in
/// Cluster mode. The reply is one value, told apart by its RESP type: the code record as a bulk
/// string (fresh), the issued `jti` as a status reply (replayed), or nil. One value parses in
/// about half the time of an array of two (the reply parser's cost is per value).
///
/// `ARGV[2]`, the record head, starts with this call's `jti`, whose last 144 bits are random: a
/// token record that starts with this head is this very call's, repeated (`Store::with_conn`
/// repeats a call whose connection dropped before the answer came back; in a Cluster the WAIT
/// travels with it, see `ack`), and gets its record again; any other caller of a spent code is
/// a replay. The record is written only if no token record exists for the code (`NX`): an
/// authorize service that reused a code value while the first token lives gets a replay (and
/// that token revoked), not a second token for one code.
///
/// A code key that holds no string (`WRONGTYPE`), or a record over 64 KiB, is spent without a
/// token record and answered as an empty record, which `grant::check` refuses as malformed: an
/// authorize service's mistake is then an `invalid_grant` instead of a 503 for ever, and a huge
/// record is not copied into a token record. So is a code whose token-record key holds no
/// string (a foreign writer under the key prefix), where the script would otherwise stop with
/// `WRONGTYPE` after taking the code, which Lua cannot undo: a 503 that says "retry" for a code
/// already spent. An unknown code with such a key is unknown. A string there that names no
/// `jti` of this code is another writer's too: `Store::take_code` tells it from a replay. Only
/// a `jti`'s characters are quoted back (a status reply must be UTF-8 to the redis crate:
/// another writer's bytes there would be a reply error, a 503 for a code already spent).
///
/// A Redis user that may not run a command of the script (an ACL) gets its `NOPERM` (a 503)
/// with nothing changed, never an answer as if the key held another type: `SET` is checked
/// before the code is taken (`redis.acl_check_cmd`, Redis 7), since a write refused after it
/// would leave the code taken without a token record, which Lua cannot undo; a refused
/// `GETDEL` changes nothing. (A refused `GET` of the token record after the code was taken,
/// for a code value the authorize service reused, is not checked for: that `GET` is rare and
/// the check would cost every exchange.)
///
/// The `#!lua` line (Redis 7) declares a writing script, which Redis then refuses up front on a
/// replica (READONLY) or on a master without enough replicas (NOREPLICAS, with
/// `min-replicas-to-write`), even when this call would only read. So a lane still connected to a
/// master that a Sentinel failover demoted gets an error, and reconnects to the new master,
/// instead of reading stale data there (an unknown code, a missed replay).
///
/// [`keys`]: super::keys
pub(super) const EXCHANGE_SCRIPT: &str = concat!(
    "#!lua\n",
    foreign!(),
    r#"if not redis.acl_check_cmd('SET', KEYS[2], '') then
  return redis.error_reply('NOPERM this user may not SET token records')
end
local record = redis.pcall('GETDEL', KEYS[1])
if foreign(record) then
  redis.call('DEL', KEYS[1])
  return ''
end
if record then
  if #record > 65536 then
    return ''
  end
  if redis.call('SET', KEYS[2], ARGV[2] .. record .. '}', 'EX', ARGV[1], 'NX') then
    return record
  end
end
local token = redis.pcall('GET', KEYS[2])
if foreign(token) then
  -- Not a token record of ours: a taken code is answered as a malformed one, an unknown code
  -- as another writer's string (no replica acknowledgement to wait for: nothing was written).
  if record then
    return ''
  end
  return redis.status_reply('')
end
if not token then
  return false
end
if string.sub(token, 1, #ARGV[2]) == ARGV[2] then
  -- This very call again: its record, written again for a WAIT on this connection to cover.
  redis.call('SET', KEYS[2], token, 'KEEPTTL')
  return string.sub(token, #ARGV[2] + 1, -2)
end
return redis.status_reply(string.match(token, '^{"jti":"([%w_%-]*)"') or '')
"#
);

/// Deletes a token record if it is the one of `ARGV[1]`, the record's start (`{"jti":"<jti>"`,
/// and for a revocation its client too: `write_record_start`): a record under the same key that
/// another exchange of the same code value wrote stays (revocation, clean-up after a refused
/// exchange), and so does a token of another client than the revoking one. With `ARGV[2]` = 1
/// (`redis.replica_acks`), when there is nothing to delete it writes and deletes `KEYS[2]` at
/// once, a key of the same slot: no trace, but a write that the replicas must acknowledge, and
/// they acknowledge in order, so the `WAIT` after it also covers a deletion that an earlier
/// attempt made and that was not acknowledged then (the client retried). Answers 1 when it
/// deleted the record, 0 when there was none, -1 when the key holds another token's (or
/// client's) record, or a value of another type (a foreign writer under the key prefix).
/// `allow-oom`: a Redis full to `maxmemory` still runs it (a deletion frees memory; a
/// revocation must not wait).
pub(super) const DELETE_SCRIPT: &str = concat!(
    "#!lua flags=allow-oom\n",
    foreign!(),
    r"local record = redis.pcall('GET', KEYS[1])
if foreign(record) then
  record = '(another type)'
end
if record and string.sub(record, 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], '', 'PX', 1)
  redis.call('DEL', KEYS[2])
end
if record then
  return -1
end
return 0
"
);

/// The version, then each command the service runs that its Redis user may not (an ACL), once
/// however many keys it is refused on, for the start to name them (`DEL` of a code key: the
/// exchange spends a code of another Redis type with it): `ARGV` holds the exchange script's
/// hash, a code key, a token-record key and a throttle key under the service's prefix, and `1`
/// when `redis.replica_acks` needs `WAIT`. Nil before Redis 7.0, which has neither `REDIS_VERSION` nor `acl_check_cmd`. Checks
/// only: nothing runs. Valkey's `REDIS_VERSION` is the Redis it is compatible with (7.2.4 for
/// Valkey 8 and 9): its own version is named instead.
pub(super) const PERMISSIONS_SCRIPT: &str = r"
if not redis.REDIS_VERSION then
  return nil
end
local version = redis.REDIS_VERSION
if redis.SERVER_NAME == 'valkey' and redis.VALKEY_VERSION then
  version = 'Valkey ' .. redis.VALKEY_VERSION
end
local refused, named = {}, {}
local function check(...)
  local command = (...)
  if not named[command] and not redis.acl_check_cmd(...) then
    named[command] = true
    refused[#refused + 1] = command
  end
end
check('EVALSHA', ARGV[1], '0')
check('EVAL', ARGV[1], '0')
check('GETDEL', ARGV[2])
check('DEL', ARGV[2])
check('SET', ARGV[3], '')
check('GET', ARGV[3])
check('DEL', ARGV[3])
check('INCR', ARGV[4])
check('PEXPIRE', ARGV[4], '1')
check('PTTL', ARGV[4])
if ARGV[5] == '1' then
  check('WAIT', '1', '0')
end
return {version, unpack(refused)}
";

/// Counts one failure under one key: the first failure of a window starts the key's TTL. One
/// key per script, so that every key of a call is in one hash slot (Redis Cluster); the calls
/// for several keys are sent at once (on a single node they leave together on the thread's
/// connection and run back to back). Returns the count and the milliseconds left.
pub(super) const COUNT_FAILURE_SCRIPT: &str = r"
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
";

/// Runs a script by its hash (`by_hash`, an `EVALSHA`). A restarted or failed-over Redis has no
/// scripts: then `whole()`, the same call as `EVAL` with the script, which caches it there. Not
/// `SCRIPT LOAD`: in a Cluster the redis crate sends that to every node, replicas too, and
/// fails if one is down.
pub(super) async fn run_script<T: redis::FromRedisValue>(
    conn: &mut Conn,
    by_hash: &redis::Cmd,
    whole: impl Fn() -> redis::Cmd,
) -> redis::RedisResult<T> {
    match by_hash.query_async(&mut *conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            whole().query_async(conn).await
        }
        done => done,
    }
}
