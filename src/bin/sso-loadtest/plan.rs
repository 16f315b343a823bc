//! What a run sends and what it expects back, worked out once from the service's own settings,
//! client registry and signing key, so that every check compares against the configuration the
//! server runs with.

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sso_token::clients::Registry;
use sso_token::config::Settings;
use sso_token::grant;
use sso_token::issue_code::NewCode;
use sso_token::oauth::{ClientCredentials, Sensitive, pkce};
use sso_token::routes::paths::TOKEN_PATH;
use sso_token::secret_hash::Argon2Limit;
use sso_token::store::keys::Keys;
use sso_token::tokens::{PublicJwk, SigningKey};

use crate::cli::RunArgs;
use crate::http::Target;

/// The values every successful exchange must carry.
#[derive(Debug, Clone)]
pub struct Expect {
    pub client_id: String,
    pub username: String,
    /// Code `i` is seeded with `account_id = "<account_base>-<i>"`: a token that comes back for
    /// the wrong code is caught.
    pub account_base: String,
    /// Granted: the record's scopes, then the base scopes the client is registered for.
    pub scopes: Vec<String>,
    pub scope_joined: String,
    pub expires_in: u64,
    pub issuer: String,
    pub aud: String,
    pub typ: String,
    pub alg: String,
    pub kid: String,
    /// The key names of the configured topology: the `jti` of a token begins with its code's
    /// record id (`Keys::record_id`), so a token answered for another code is caught.
    pub keys: Keys,
}

impl Expect {
    pub fn account_id(&self, code_index: usize) -> String {
        format!("{}-{code_index}", self.account_base)
    }
}

/// The token exchange: client, key and records.
pub struct TokenPlan {
    pub expect: Expect,
    /// The scopes each code record names (`--scope`); `expect.scopes` adds the base scopes.
    pub record_scopes: Vec<String>,
    pub jwk: PublicJwk,
    pub redirect_uri: String,
    /// PKCE: the verifier sent with every request; its S256 challenge is stored with each code.
    pub verifier: Option<String>,
    pub templates: Vec<Template>,
}

/// One request, split around the code, with the head for one target.
pub struct Template {
    head: Vec<u8>,
    body_head: Vec<u8>,
    body_tail: Vec<u8>,
}

impl Template {
    /// Writes the whole request for `code` into `out` (cleared first).
    pub fn write(&self, code: &str, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.head);
        if self.body_head.is_empty() && self.body_tail.is_empty() {
            return;
        }
        let length = self.body_head.len() + code.len() + self.body_tail.len();
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(length.to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&self.body_head);
        out.extend_from_slice(code.as_bytes());
        out.extend_from_slice(&self.body_tail);
    }

    /// `GET <prefix>/healthz`.
    pub fn healthz(target: &Target) -> Self {
        Self::get(target, "/healthz")
    }

    /// `GET <prefix><path>` with no body.
    pub fn get(target: &Target, path: &str) -> Self {
        let head = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            target.prefix, target.host
        );
        Self {
            head: head.into_bytes(),
            body_head: Vec::new(),
            body_tail: Vec::new(),
        }
    }
}

impl TokenPlan {
    pub async fn new(
        settings: &Settings,
        args: &RunArgs,
        targets: &[Target],
    ) -> anyhow::Result<Self> {
        let registry = Registry::load(&settings.clients.file, &Argon2Limit::half_the_cpus())?;
        let client = registry.get(&args.client_id).with_context(|| {
            format!(
                "client `{}` is not in {}",
                args.client_id,
                settings.clients.file.display()
            )
        })?;
        let credentials = ClientCredentials {
            id: args.client_id.clone(),
            secret: Sensitive::new(args.client_secret.clone()),
            used_basic: false,
            assertion: None,
        };
        if registry.verify_secret(&credentials).await.is_err() {
            bail!(
                "--client-secret does not match the entry of `{}` in {} (or the client is \
                 disabled)",
                args.client_id,
                settings.clients.file.display()
            );
        }
        if !client.may_exchange_codes() {
            bail!(
                "client `{}` may not use the authorization_code grant",
                client.id
            );
        }
        let redirect_uri = match &args.redirect_uri {
            Some(uri) => uri.clone(),
            None => client
                .redirect_uris
                .first()
                .cloned()
                .context("the client has no redirect URI")?,
        };
        if !client.has_redirect_uri(&redirect_uri) {
            bail!(
                "redirect URI `{redirect_uri}` is not registered for `{}`",
                client.id
            );
        }
        let record_scopes: Vec<String> = if args.scopes.is_empty() {
            client.scopes.iter().take(1).cloned().collect()
        } else {
            args.scopes.clone()
        };
        if let Some(denied) = record_scopes.iter().find(|s| !client.allows_scope(s)) {
            bail!("scope `{denied}` is not allowed for `{}`", client.id);
        }
        let mut scopes = record_scopes.clone();
        grant::add_base_scopes(&mut scopes, &settings.token.base_scopes, client);
        let key_path = &settings.token.signing_key;
        let pem = std::fs::read_to_string(key_path)
            .with_context(|| format!("token.signing_key `{}`", key_path.display()))?;
        let key = SigningKey::from_pem(&pem)
            .with_context(|| format!("token.signing_key `{}`", key_path.display()))?;
        let aud = client.audience_or(&settings.token.audience).to_owned();
        let verifier = if args.pkce {
            let mut random = [0u8; 32];
            aws_lc_rs::rand::fill(&mut random).map_err(|_| anyhow::anyhow!("no randomness"))?;
            Some(URL_SAFE_NO_PAD.encode(random))
        } else {
            None
        };
        let expect = Expect {
            client_id: client.id.clone(),
            username: args.username.clone(),
            account_base: args.account_id.clone(),
            scope_joined: scopes.join(&settings.token.scope_separator),
            scopes,
            expires_in: settings.token.expires_in,
            issuer: settings.token.issuer.clone(),
            aud,
            typ: settings.token.typ.clone(),
            alg: format!("{:?}", key.algorithm()),
            kid: key.kid().to_owned(),
            keys: Keys::of(&settings.redis),
        };
        let mut plan = Self {
            expect,
            record_scopes,
            jwk: key.public_jwk().clone(),
            redirect_uri,
            verifier,
            templates: Vec::new(),
        };
        plan.templates = targets
            .iter()
            .map(|t| plan.template(t, args))
            .collect::<anyhow::Result<_>>()?;
        Ok(plan)
    }

    /// The record the authorize service would store for code number `index`.
    pub fn record(&self, index: usize, issued_at: u64) -> NewCode {
        NewCode {
            client_id: self.expect.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            username: self.expect.username.clone(),
            account_id: self.expect.account_id(index),
            scope: self.record_scopes.clone(),
            code_challenge: self.verifier.as_deref().map(pkce::s256_challenge),
            code_challenge_method: self.verifier.as_ref().map(|_| "S256".to_owned()),
            issued_at,
            profile: Default::default(),
        }
    }

    /// Codes are `OC-<digits>-<alphanumerics>`: they go into JSON and forms unescaped.
    fn template(&self, target: &Target, args: &RunArgs) -> anyhow::Result<Template> {
        let mut head = format!(
            "POST {}{TOKEN_PATH} HTTP/1.1\r\nHost: {}\r\n",
            target.prefix, target.host
        );
        let (body_head, body_tail) = if args.form_basic {
            let id = form_value(&args.client_id)?;
            let secret = form_value(&args.client_secret)?;
            let basic = STANDARD.encode(format!("{id}:{secret}"));
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            head.push_str(&format!("Authorization: Basic {basic}\r\n"));
            let mut tail = format!("&redirect_uri={}", form_value(&self.redirect_uri)?);
            if let Some(verifier) = &self.verifier {
                tail.push_str(&format!("&code_verifier={}", form_value(verifier)?));
            }
            ("grant_type=authorization_code&code=".to_owned(), tail)
        } else {
            head.push_str("Content-Type: application/json\r\n");
            let json = |s: &str| serde_json::Value::from(s).to_string();
            let body_head = format!(
                r#"{{"grant_type":"authorization_code","client_id":{},"client_secret":{},"code":""#,
                json(&args.client_id),
                json(&args.client_secret)
            );
            let mut tail = format!(r#"","redirect_uri":{}"#, json(&self.redirect_uri));
            if let Some(verifier) = &self.verifier {
                tail.push_str(&format!(r#","code_verifier":{}"#, json(verifier)));
            }
            tail.push('}');
            (body_head, tail)
        };
        Ok(Template {
            head: head.into_bytes(),
            body_head: body_head.into_bytes(),
            body_tail: body_tail.into_bytes(),
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (RFC 6749 §2.3.1 for Basic too).
fn form_value(value: &str) -> anyhow::Result<String> {
    let pair = serde_urlencoded::to_string([("v", value)])?;
    Ok(pair.trim_start_matches("v=").to_owned())
}
