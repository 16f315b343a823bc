//! [`Digest`], in a module of its own so that its bytes are out of reach of the code that
//! compares digests: outside this module two digests compare by [`ConstantTimeEq`] only (their
//! hex, which `secret_hash` writes into a stored hash, is for storing, not comparing).

use aws_lc_rs::digest::{SHA256, digest};
use subtle::ConstantTimeEq;

/// The SHA-256 of a secret. It has no `PartialEq`: `==` on two of them does not compile, so the
/// only way to compare them is [`ConstantTimeEq`].
#[derive(Clone, Copy)]
pub(crate) struct Digest([u8; 32]);

impl ConstantTimeEq for Digest {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl Digest {
    /// All zeros: what an unknown client's presented secret is compared with, so that it costs
    /// the same as a known one's.
    pub(crate) const ZERO: Self = Self([0; 32]);

    /// The bytes, for a test that looks for them where they must not be.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> [u8; 32] {
        self.0
    }

    /// Lower-case hex, the stored `sha256:` form.
    pub(super) fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The digest of a presented or stored secret.
pub(crate) fn sha256(text: &str) -> Digest {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, text.as_bytes()).as_ref());
    Digest(out)
}

/// The digest of a stored `sha256:` hex string, or `None` if it is not 64 hex digits.
pub(super) fn decode_hex(hex: &str) -> Option<Digest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        *byte = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(Digest(out))
}

/// One hex digit's value. Not `u8::from_str_radix` on the pair: it takes a leading `+`, so
/// `+f` would pass for a hex pair.
fn nibble(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}
