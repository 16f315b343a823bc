//! `sign-bench`: how many signatures per second the configured key gives on one thread, through
//! `SigningKey::sign` as the server calls it. The ceiling every load report compares against.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use sso_token::config::Settings;
use sso_token::tokens::{Claims, SigningKey};

#[derive(Serialize)]
struct SignBench {
    kind: &'static str,
    label: Option<String>,
    algorithm: String,
    kid: String,
    seconds: f64,
    signatures: u64,
    rate_per_s: f64,
    us_per_signature: f64,
    message_bytes: usize,
    /// The same tokens through `jsonwebtoken::encode`, which parses the PEM key on every call:
    /// the option the server does not take, measured so the choice stays justified.
    jsonwebtoken_encode_rate_per_s: f64,
}

pub fn run(
    settings: &Settings,
    seconds: f64,
    label: Option<String>,
    json: Option<&Path>,
) -> anyhow::Result<()> {
    let path = &settings.token.signing_key;
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("token.signing_key `{}`", path.display()))?;
    let key = SigningKey::from_pem(&pem)
        .with_context(|| format!("token.signing_key `{}`", path.display()))?;
    let message = signing_input(&key, settings)?;
    let mut sign = || key.sign(std::hint::black_box(&message)).map(drop);
    // A short warm-up: page in the code, settle the CPU frequency.
    measure(&mut sign, Duration::from_millis(200))?;
    let (signatures, elapsed) = measure(&mut sign, Duration::from_secs_f64(seconds))?;
    let secs = elapsed.as_secs_f64();
    let via_jsonwebtoken = jsonwebtoken_rate(&key, &pem, settings, (seconds / 4.0).max(0.5))?;
    let report = SignBench {
        kind: "sign-bench",
        label,
        algorithm: format!("{:?}", key.algorithm()),
        kid: key.kid().to_owned(),
        seconds: secs,
        signatures,
        rate_per_s: signatures as f64 / secs,
        us_per_signature: secs * 1e6 / signatures.max(1) as f64,
        message_bytes: message.len(),
        jsonwebtoken_encode_rate_per_s: via_jsonwebtoken,
    };
    println!(
        "== sign-bench: {} key {}: {:.1} signatures/s ({:.1} µs each), one thread, {} signatures \
         of a {}-byte signing input in {:.2} s",
        report.algorithm,
        report.kid,
        report.rate_per_s,
        report.us_per_signature,
        report.signatures,
        report.message_bytes,
        secs
    );
    println!(
        "   (the same claims through jsonwebtoken::encode with an EncodingKey from the PEM: \
         {via_jsonwebtoken:.1}/s)"
    );
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("--json {}", path.display()))?;
    }
    Ok(())
}

/// Signatures per second through `jsonwebtoken::encode`, the crate's own signing path.
fn jsonwebtoken_rate(
    key: &SigningKey,
    pem: &str,
    settings: &Settings,
    seconds: f64,
) -> anyhow::Result<f64> {
    use jsonwebtoken::{EncodingKey, Header};
    use sso_token::tokens::Algorithm;
    let bytes = pem.as_bytes();
    let (encoding, alg) = match key.algorithm() {
        Algorithm::RS256 => (
            EncodingKey::from_rsa_pem(bytes),
            jsonwebtoken::Algorithm::RS256,
        ),
        Algorithm::ES256 => (
            EncodingKey::from_ec_pem(bytes),
            jsonwebtoken::Algorithm::ES256,
        ),
        Algorithm::EdDSA => (
            EncodingKey::from_ed_pem(bytes),
            jsonwebtoken::Algorithm::EdDSA,
        ),
    };
    let encoding = encoding.context("jsonwebtoken cannot read the key")?;
    let mut header = Header::new(alg);
    header.typ = Some(settings.token.typ.clone());
    header.kid = Some(key.kid().to_owned());
    let scope = ["user:basic".to_owned()];
    let claims = example_claims(settings, &scope);
    let mut encode = || {
        jsonwebtoken::encode(&header, std::hint::black_box(&claims), &encoding)
            .map(drop)
            .context("jsonwebtoken::encode")
    };
    measure(&mut encode, Duration::from_millis(100))?;
    let (count, elapsed) = measure(&mut encode, Duration::from_secs_f64(seconds))?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

fn measure<E>(
    op: &mut impl FnMut() -> Result<(), E>,
    time: Duration,
) -> anyhow::Result<(u64, Duration)>
where
    anyhow::Error: From<E>,
{
    let start = Instant::now();
    let mut count = 0u64;
    loop {
        for _ in 0..8 {
            op()?;
        }
        count += 8;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return Ok((count, elapsed));
        }
    }
}

fn example_claims<'a>(settings: &'a Settings, scope: &'a [String]) -> Claims<'a> {
    Claims {
        sub: "8cneYRM97jU0pqVpJWY",
        aud: "demo-app",
        scope,
        iss: &settings.token.issuer,
        exp: 1_700_001_800,
        iat: 1_700_000_000,
        jti: "q1Vx2cQ0bJYp3n8Zk7RtWm4Lq1Vx2cQ0bJYp",
        client_id: "demo-app",
    }
}

/// A signing input of the size the server signs: the encoded header and typical claims.
fn signing_input(key: &SigningKey, settings: &Settings) -> anyhow::Result<Vec<u8>> {
    let header = serde_json::json!({
        "typ": settings.token.typ,
        "alg": format!("{:?}", key.algorithm()),
        "kid": key.kid(),
    });
    let scope = ["user:basic".to_owned()];
    let claims = example_claims(settings, &scope);
    let mut input = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims)?, &mut input);
    Ok(input.into_bytes())
}
