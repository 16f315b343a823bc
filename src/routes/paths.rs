//! Every path the service answers on, in one place: the route table, the metrics' endpoint
//! label and the discovery metadata all read them here.

pub const TOKEN_PATH: &str = "/identity/sso/oauth2/access_token";
pub const INTROSPECT_PATH: &str = "/identity/sso/oauth2/introspect";
pub const REVOKE_PATH: &str = "/identity/sso/oauth2/revoke";
pub const USERINFO_PATH: &str = "/identity/sso/oauth2/user";
pub const JWKS_PATH: &str = "/identity/sso/oauth2/jwks";
pub const JWKS_WELL_KNOWN_PATH: &str = "/.well-known/jwks.json";
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// The authorize service's path, for the metadata when `discovery.authorization_endpoint` is
/// not set (it is not served here).
pub const AUTHORIZE_PATH: &str = "/identity/sso/oauth2/authorize";
pub const HEALTHZ_PATH: &str = "/healthz";
pub const READYZ_PATH: &str = "/readyz";
pub const METRICS_PATH: &str = "/metrics";
