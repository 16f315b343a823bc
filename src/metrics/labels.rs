//! The label values of the series: an enum per label, declared once with its values, and the
//! `outcome` label's values with the index of each error code's.

use prometheus::core::{MetricVec, MetricVecBuilder};

use crate::oauth::error::ErrorCode;
use crate::routes::paths::{
    HEALTHZ_PATH, INTROSPECT_PATH, JWKS_PATH, JWKS_WELL_KNOWN_PATH, METADATA_PATH, METRICS_PATH,
    READYZ_PATH, REVOKE_PATH, TOKEN_PATH, USERINFO_PATH,
};

/// An enum whose variants are a label's values, declared once: the variants, `ALL` (every
/// variant, each at the index `variant as usize`, the order the series are kept in) and
/// `label()` come from one list, so a new variant has its series and its label.
macro_rules! labelled {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$doc:meta])* $variant:ident => $label:literal,)+
    }) => {
        $(#[$meta])*
        pub enum $name {
            $($(#[$doc])* $variant,)+
        }

        impl $name {
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant,)+];

            pub(crate) fn label(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// One series of `vec` per value, in `ALL`'s order (indexed by `value as usize`).
            pub(super) fn series<P: MetricVecBuilder>(vec: &MetricVec<P>) -> Vec<P::M> {
                Self::ALL.iter().map(|v| vec.with_label_values(&[v.label()])).collect()
            }
        }
    };
}

labelled! {
    /// What a request was for; anything else is `other`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Endpoint {
        Token => "token",
        Introspect => "introspect",
        Revoke => "revoke",
        UserInfo => "userinfo",
        Discovery => "discovery",
        Healthz => "healthz",
        Readyz => "readyz",
        Metrics => "metrics",
        Other => "other",
    }
}

impl Endpoint {
    pub fn of(path: &str) -> Self {
        match path {
            TOKEN_PATH => Self::Token,
            INTROSPECT_PATH => Self::Introspect,
            REVOKE_PATH => Self::Revoke,
            USERINFO_PATH => Self::UserInfo,
            JWKS_PATH | JWKS_WELL_KNOWN_PATH | METADATA_PATH => Self::Discovery,
            HEALTHZ_PATH => Self::Healthz,
            READYZ_PATH => Self::Readyz,
            METRICS_PATH => Self::Metrics,
            // An issuer's metadata under its path (RFC 8414 §3.1).
            _ if path
                .strip_prefix(METADATA_PATH)
                .is_some_and(|rest| rest.starts_with('/')) =>
            {
                Self::Discovery
            }
            _ => Self::Other,
        }
    }
}

/// The `outcome` label's values: `ok`, every error code the service answers with (each
/// [`ErrorCode`] at [`outcome_of`]`(code)`), and `other` (404, …).
pub(super) const OUTCOMES: [&str; ErrorCode::ALL.len() + 2] = {
    let mut outcomes = ["ok"; ErrorCode::ALL.len() + 2];
    let mut i = 0;
    while i < ErrorCode::ALL.len() {
        outcomes[outcome_of(ErrorCode::ALL[i])] = ErrorCode::ALL[i].as_str();
        i += 1;
    }
    outcomes[OTHER] = "other";
    outcomes
};
/// The index of `ok` in [`OUTCOMES`].
pub(super) const OK: usize = 0;
/// The index of `other` in [`OUTCOMES`].
pub(super) const OTHER: usize = ErrorCode::ALL.len() + 1;

/// The index of `code` in [`OUTCOMES`]: no lookup, on every answer.
pub(super) const fn outcome_of(code: ErrorCode) -> usize {
    code as usize + 1
}

labelled! {
    /// The Redis operations that are timed.
    #[derive(Debug, Clone, Copy)]
    pub enum RedisOp {
        /// The exchange script: take the code, write the token record.
        Exchange => "exchange",
        /// Delete a token record (revocation, clean-up).
        DeleteToken => "delete_token",
        /// Read a token record (introspection, user info).
        GetToken => "get_token",
        /// Readiness PING.
        Ping => "ping",
        /// Count a failed client authentication, or read the counters.
        Throttle => "throttle",
        /// Spend a client assertion's `jti` (`private_key_jwt`): its single-use marker.
        Assertion => "assertion",
    }
}

labelled! {
    /// Why a token was revoked.
    #[derive(Debug, Clone, Copy)]
    pub enum Revocation {
        /// Its authorization code was presented again (RFC 6749 §4.1.2).
        Replay => "replay",
        /// A revocation request (the revocation endpoint counts here).
        Request => "request",
    }
}

labelled! {
    /// What a throttled request was throttled by.
    #[derive(Debug, Clone, Copy)]
    pub enum ThrottledBy {
        Address => "address",
        Client => "client",
    }
}

labelled! {
    /// What became of a reload (SIGHUP), as `live` decides it.
    #[derive(Debug, Clone, Copy)]
    pub enum Reload {
        /// Loaded and swapped in (sections that need a restart are warned of, not applied).
        Applied => "applied",
        /// Did not load (the log says why): the running configuration stays.
        Refused => "refused",
    }
}
