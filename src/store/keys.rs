//! Key names, and the token ids that let a token record share its code's Cluster hash slot.
//!
//! Standalone and Sentinel: `<prefix>code:<code>`, `<prefix>used:<code>`, `<prefix>token:<jti>`.
//! Cluster: every key of one exchange must live in one hash slot, so that one script (one round
//! trip) still does the whole exchange. The code is the hash tag of the code and marker keys,
//! `<prefix>code:{<code>}` and `<prefix>used:{<code>}` (the authorize service writes the former:
//! README, "Redis topologies"). The token record must be found from the `jti` alone, so the `jti`
//! starts with a 3-character tag that hashes to the code's slot, and the record is
//! `<prefix>token:{<tag>}<rest>`. The tag reveals the slot and nothing else; the rest of the
//! `jti` keeps its 144 random bits.

use std::sync::OnceLock;

use crate::tokens;

/// Redis Cluster's slot count (CLUSTER KEYSLOT is CRC16 mod 16384).
const SLOTS: usize = 16384;
/// Length of a slot tag: 62³ = 238,328 strings cover all 16,384 slots (a unit test proves it).
pub const TAG_LEN: usize = 3;
const ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Builds the key names of one deployment; the only place that does.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    /// Cluster mode: hash tags in every key, slot tags in every `jti`.
    tagged: bool,
}

impl Keys {
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
    /// or empty its hash tag and split its keys over slots, so the contract excludes braces.
    pub fn admits(&self, code: &str) -> bool {
        !self.tagged || !code.contains(['{', '}'])
    }

    pub fn code(&self, code: &str) -> String {
        self.keyed("code:", code)
    }

    pub fn used(&self, code: &str) -> String {
        self.keyed("used:", code)
    }

    /// The token record's key; any string gives a key (a `jti` we never issued finds nothing).
    pub fn token(&self, jti: &str) -> String {
        match (self.tagged, jti.get(..TAG_LEN), jti.get(TAG_LEN..)) {
            (true, Some(tag), Some(rest)) => concat(&[&self.prefix, "token:{", tag, "}", rest]),
            _ => concat(&[&self.prefix, "token:", jti]),
        }
    }

    /// A fresh `jti` for the token issued for `code`: 144 random bits, URL-safe base64; in
    /// Cluster mode preceded by the tag of the code's slot.
    pub fn new_jti(&self, code: &str) -> Result<String, aws_lc_rs::error::Unspecified> {
        let random = tokens::new_jti()?;
        if !self.tagged {
            return Ok(random);
        }
        let tag = &slot_tags()[usize::from(slot(self.code(code).as_bytes()))];
        let mut jti = String::with_capacity(TAG_LEN + random.len());
        jti.extend(tag.iter().map(|b| char::from(*b)));
        jti.push_str(&random);
        Ok(jti)
    }

    /// A failure counter of the throttle: `kind` is `client` or `addr`. One key per script
    /// call, so its slot in Cluster mode is its own business.
    pub fn throttle(&self, kind: &str, id: &str) -> String {
        concat(&[&self.prefix, "throttle:", kind, ":", id])
    }

    fn keyed(&self, kind: &str, code: &str) -> String {
        if self.tagged {
            concat(&[&self.prefix, kind, "{", code, "}"])
        } else {
            concat(&[&self.prefix, kind, code])
        }
    }
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
