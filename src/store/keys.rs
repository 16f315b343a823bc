//! Key names, and the token ids that name a token record after its code.
//!
//! Standalone and Sentinel: `<prefix>code:<code>`, `<prefix>token:<record id>`. A `jti` is the
//! record id, 72 bits of a hash of the code, then 144 random bits of its own exchange. So the
//! token record of a code is also its replay marker: one key per exchange finds the token from
//! its `jti` (introspection, revocation) and from the code (a replay). Each new key with a TTL
//! costs Redis more than the rest of the script: with two per exchange (a record and a marker)
//! Redis spent half as much CPU again (BENCHMARKS.md, "One key per exchange"). The random part
//! keeps every `jti` unique even if an authorize service reuses a code value, and the record
//! holds the whole `jti`, so a record that another exchange wrote under the same key never
//! stands for this token.
//!
//! Cluster: every key of one exchange must live in one hash slot, so that one script (one round
//! trip) still does the whole exchange. The code is the hash tag of its key,
//! `<prefix>code:{<code>}` (the authorize service writes it: README, "Redis topologies"). The
//! token record must be found from the `jti` alone, so the `jti` starts with a 3-character tag
//! that hashes to the code's slot, and the record is `<prefix>token:{<tag>}<rest of the record
//! id>`. The tag reveals the slot and nothing else.

use std::sync::OnceLock;

use aws_lc_rs::digest::{Context, Digest, SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::{RedisMode, RedisSettings};
use crate::tokens;

/// Redis Cluster's slot count (CLUSTER KEYSLOT is CRC16 mod 16384).
pub const SLOTS: usize = 16384;
/// Length of a slot tag: 62³ = 238,328 strings cover all 16,384 slots (a unit test proves it).
pub const TAG_LEN: usize = 3;
/// Bytes of the code's hash in a `jti`.
const HASH_BYTES: usize = 9;
/// Characters of the code's hash in a `jti`: base64 of [`HASH_BYTES`] (9 bytes make 12).
const HASH_CHARS: usize = HASH_BYTES * 4 / 3;
/// Characters of the random part at the end of a `jti` (`tokens::random_id`).
pub const RANDOM_CHARS: usize = tokens::RANDOM_ID_CHARS;

/// Characters of every `jti` this build issues, in Cluster mode (`tagged`) or not: what a
/// sample token must carry to be as long as a real one.
pub const fn jti_len(tagged: bool) -> usize {
    (if tagged { TAG_LEN } else { 0 }) + HASH_CHARS + RANDOM_CHARS
}
/// Separates this use of SHA-256 from any other hash of a code (PKCE hashes verifiers).
const JTI_DOMAIN: &[u8] = b"sso-token jti\0";
/// Separates the hash of a client id in a throttle key from the other hashes.
const THROTTLE_DOMAIN: &[u8] = b"sso-token throttle client\0";
/// Separates the hash of a client assertion's client id and `jti` from the other hashes.
const ASSERTION_DOMAIN: &[u8] = b"sso-token client assertion\0";
const ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Builds the key names of one deployment; the only place that does.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// Cluster mode: hash tags in every key, slot tags in every `jti`.
    tagged: bool,
}

/// Whether the keys of `settings` are tagged: in a Cluster a code's key and its token record
/// must hash to one slot, for the exchange's one script call (README, "The Cluster key contract").
pub fn tagged(settings: &RedisSettings) -> bool {
    settings.mode == RedisMode::Cluster
}

impl Keys {
    /// The keys of the deployment `settings` describe.
    pub fn of(settings: &RedisSettings) -> Self {
        Self::new(&settings.key_prefix, tagged(settings))
    }

    pub fn new(prefix: &str, tagged: bool) -> Self {
        if tagged {
            slot_tags();
        }
        Self {
            prefix: prefix.to_owned(),
            tagged,
        }
    }

    /// Whether `code` can exist under this layout: in Cluster mode a brace in a code would end
    /// or empty its hash tag, so the contract excludes braces (README, "Redis topologies").
    pub fn admits(&self, code: &str) -> bool {
        !self.tagged || !code.contains(['{', '}'])
    }

    /// Whether keys carry Cluster hash tags.
    pub fn tagged(&self) -> bool {
        self.tagged
    }

    /// The Cluster hash slot of `code`'s key; `None` outside Cluster mode.
    pub fn slot_of_code(&self, code: &str) -> Option<u16> {
        self.tagged.then(|| slot(self.code(code).as_bytes()))
    }

    /// The Cluster hash slot of the record of a token `jti`: its code's, by the tag the `jti`
    /// begins with.
    pub fn slot_of_token(&self, jti: &str) -> Option<u16> {
        self.tagged.then(|| slot(self.token(jti).as_bytes()))
    }

    pub fn code(&self, code: &str) -> String {
        self.keyed("code:", code)
    }

    /// The token record's key: named by the `jti`'s record id, its first characters (the
    /// random part's length may change between builds: the `jti`s of one with 12 random
    /// characters still find their records). Any string gives a key (a `jti` we never issued
    /// finds nothing, or a record that names another `jti`).
    pub fn token(&self, jti: &str) -> String {
        let id_len = HASH_CHARS + if self.tagged { TAG_LEN } else { 0 };
        self.record_key(jti.get(..id_len).unwrap_or(jti))
    }

    /// A key beside a token record (`token_key`, from [`Keys::token`]), in its slot, that a
    /// revocation with nothing to delete writes and deletes at once so that `WAIT` has a write
    /// to count (see `DELETE_SCRIPT`).
    pub fn revoking(&self, token_key: &str) -> String {
        concat(&[token_key, ":revoking"])
    }

    /// The key of the record of any token issued for `code`.
    pub fn token_of_code(&self, code: &str) -> String {
        self.record_key(&self.record_id(code))
    }

    fn record_key(&self, id: &str) -> String {
        match (self.tagged, id.get(..TAG_LEN), id.get(TAG_LEN..)) {
            (true, Some(tag), Some(rest)) => concat(&[&self.prefix, "token:{", tag, "}", rest]),
            _ => concat(&[&self.prefix, "token:", id]),
        }
    }

    /// A fresh `jti` for the token issued for `code`: its [`Keys::record_id`], then 144 random
    /// bits (36 characters in all, 39 in Cluster mode).
    pub fn new_jti(&self, code: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
        self.new_jti_in(code, self.slot_of_code(code))
    }

    /// [`Keys::new_jti`] with the code's [`Keys::slot_of_code`] already known.
    pub fn new_jti_in(
        &self,
        code: &str,
        slot: Option<u16>,
    ) -> Result<String, aws_lc_rs::error::Unspecified> {
        let mut jti = self.record_id_in(code, slot);
        tokens::push_random_id(&mut jti)?;
        Ok(jti)
    }

    /// What every `jti` issued for `code` begins with, and its token record's key ends with: 72
    /// bits of SHA-256 of the code, URL-safe base64, after the tag of the code's slot in Cluster
    /// mode. Whoever holds the code finds the record of the token it was exchanged for; the hash
    /// gives the code away only as far as the code's own randomness lets it be guessed, and
    /// that code is spent.
    pub fn record_id(&self, code: &str) -> String {
        self.record_id_in(code, self.slot_of_code(code))
    }

    /// [`Keys::record_id`], `slot` being `code`'s [`Keys::slot_of_code`].
    fn record_id_in(&self, code: &str, slot: Option<u16>) -> String {
        let hash = domain_hash(JTI_DOMAIN, code);
        let mut id = String::with_capacity(TAG_LEN + HASH_CHARS + RANDOM_CHARS);
        if let Some(slot) = slot {
            let tag = &slot_tags()[usize::from(slot)];
            id.extend(tag.iter().map(|b| char::from(*b)));
        }
        URL_SAFE_NO_PAD.encode_string(&hash.as_ref()[..HASH_BYTES], &mut id);
        id
    }

    /// The throttle's failure counter of a client id, named by a hash of the id: the id comes
    /// before authentication, so it may be anything, a secret pasted into the wrong field
    /// among them, which would then sit in Redis' key space, its slow log and its dumps; and a
    /// `{…}` in it would choose the key's Cluster slot.
    pub fn throttle_client(&self, client_id: &str) -> String {
        let mut key = concat(&[&self.prefix, "throttle:client:"]);
        URL_SAFE_NO_PAD.encode_string(domain_hash(THROTTLE_DOMAIN, client_id), &mut key);
        key
    }

    /// The throttle's failure counter of a client id at one source address: what lets the other
    /// clients behind a blocked address in. The id by the same hash as in
    /// [`Keys::throttle_client`], then `@` and the address.
    pub fn throttle_client_at(&self, client_id: &str, address: &str) -> String {
        let mut key = concat(&[&self.prefix, "throttle:pair:"]);
        URL_SAFE_NO_PAD.encode_string(domain_hash(THROTTLE_DOMAIN, client_id), &mut key);
        key.push('@');
        key.push_str(address);
        key
    }

    /// The counter that an unknown client id's failures add to in place of the two of a
    /// registered id (by id, and by id at an address), and that nothing reads: the same calls
    /// then take the same time, and a made-up id leaves no key of its own.
    pub fn throttle_decoy(&self) -> String {
        concat(&[&self.prefix, "throttle:decoy"])
    }

    /// The throttle's failure counter of a source address (an IPv6 one by its /64), readable
    /// for an operator looking for who is blocked. One key per script call, so its slot in
    /// Cluster mode is its own business.
    pub fn throttle_address(&self, address: &str) -> String {
        concat(&[&self.prefix, "throttle:addr:", address])
    }

    /// The single-use marker of a client assertion (`client_assertion`): named by a hash of
    /// the client id and the assertion's `jti`, both chosen by the client, so that any
    /// characters are safe and no `{…}` chooses a Cluster slot. One key per call, so its slot
    /// in Cluster mode is its own business. The id is hashed with its length first: no id and
    /// `jti` pair runs into another's.
    pub fn assertion(&self, client_id: &str, jti: &str) -> String {
        let mut hash = Context::new(&SHA256);
        hash.update(ASSERTION_DOMAIN);
        hash.update(&(client_id.len() as u64).to_be_bytes());
        hash.update(client_id.as_bytes());
        hash.update(jti.as_bytes());
        let mut key = concat(&[&self.prefix, "assertion:"]);
        URL_SAFE_NO_PAD.encode_string(hash.finish(), &mut key);
        key
    }

    /// The Cluster hash slot of any key of this layout; `None` outside Cluster mode.
    pub fn slot_of_key(&self, key: &str) -> Option<u16> {
        self.tagged.then(|| slot(key.as_bytes()))
    }

    fn keyed(&self, kind: &str, code: &str) -> String {
        if self.tagged {
            concat(&[&self.prefix, kind, "{", code, "}"])
        } else {
            concat(&[&self.prefix, kind, code])
        }
    }
}

/// SHA-256 of `domain` then `value`: the domain keeps each use's hashes apart.
fn domain_hash(domain: &[u8], value: &str) -> Digest {
    let mut hash = Context::new(&SHA256);
    hash.update(domain);
    hash.update(value.as_bytes());
    hash.finish()
}

/// The parts in one allocation of the exact size (`format!` guesses, then grows): three keys
/// are built per exchange.
fn concat(parts: &[&str]) -> String {
    let mut joined = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    parts.iter().for_each(|part| joined.push_str(part));
    joined
}

/// The hash slot of `key`, as Redis Cluster computes it: CRC16 (XMODEM) of the hash tag, the
/// part between the first `{` and the next `}` when not empty, else of the whole key.
pub fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let inner = &key[open + 1..];
            inner
                .iter()
                .position(|&b| b == b'}')
                .map(|close| &inner[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One tag per slot, the first in alphabetical order that hashes there; built once (~240,000
/// CRCs of 3 bytes, about a millisecond).
pub fn slot_tags() -> &'static [[u8; TAG_LEN]] {
    static TAGS: OnceLock<Vec<[u8; TAG_LEN]>> = OnceLock::new();
    TAGS.get_or_init(|| {
        let mut tags = vec![[0u8; TAG_LEN]; SLOTS];
        let mut filled = 0;
        'all: for &a in ALPHANUMERIC {
            for &b in ALPHANUMERIC {
                for &c in ALPHANUMERIC {
                    let tag = [a, b, c];
                    let entry = &mut tags[usize::from(slot(&tag))];
                    if entry[0] == 0 {
                        *entry = tag;
                        filled += 1;
                        if filled == SLOTS {
                            break 'all;
                        }
                    }
                }
            }
        }
        tags
    })
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
