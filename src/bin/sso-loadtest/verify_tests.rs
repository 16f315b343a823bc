use sso_token::store::keys::Keys;
use sso_token::tokens::{Claims, KeyKind, Minter, SigningKey};

use super::*;

#[test]
fn a_jti_is_its_codes_record_id_and_24_random_characters() {
    let (id, random) = ("x9ZAbCdEfGhIjKl", "MnOpQrSt-_Uv0123456789ab");
    assert!(is_jti(&format!("{id}{random}"), id));
    assert!(
        !is_jti(&format!("x9Y{}{random}", &id[3..]), id),
        "another code's"
    );
    assert!(!is_jti(id, id), "no random part");
    assert!(!is_jti(&format!("{id}{}", &random[1..]), id), "too short");
    assert!(
        !is_jti(&format!("{id}{}=", &random[1..]), id),
        "not URL-safe base64"
    );
}

fn scope(json: &str) -> Scope<'_> {
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_scope_claim_is_checked_in_the_shape_of_the_typ() {
    let expected = ["user:basic".to_owned(), "user:contract".to_owned()];
    let (list, joined) = (
        r#"["user:basic","user:contract"]"#,
        r#""user:basic user:contract""#,
    );
    assert!(scope(list).is(&expected, "access_token"));
    assert!(scope(joined).is(&expected, "at+jwt"));
    assert!(
        !scope(joined).is(&expected, "access_token"),
        "string, seed typ"
    );
    assert!(!scope(list).is(&expected, "at+jwt"), "array, RFC 9068 typ");
    for (other, typ) in [
        (r#"["user:contract","user:basic"]"#, "access_token"),
        (r#"["user:basic"]"#, "access_token"),
        (r#""user:basic""#, "at+jwt"),
        (r#""user:basic,user:contract""#, "at+jwt"),
        (r#""user:basic  user:contract""#, "at+jwt"),
    ] {
        assert!(!scope(other).is(&expected, typ), "{other}");
    }
}

/// A token minted by the server's own minter (key `pem`) with its claims edited by `edit`,
/// in the seed's six-field answer, checked as the answer to code 7 of `expect`; and the
/// token.
fn check(expect: &Expect, pem: &str, edit: &Edit) -> (Result<Accepted, String>, String) {
    check_as(expect, expect, pem, edit)
}

/// [`check`], the token minted (header `typ`, claims) for `minted` and checked for `expect`.
fn check_as(
    minted: &Expect,
    expect: &Expect,
    pem: &str,
    edit: &Edit,
) -> (Result<Accepted, String>, String) {
    let now = sso_token::clock::unix_now();
    let code = "OC-7";
    let mut claims = serde_json::json!({
        "sub": expect.account_id(7), "aud": expect.aud, "scope": expect.scopes,
        "iss": expect.issuer, "exp": now + expect.expires_in, "iat": now,
        "jti": expect.keys.new_jti(code).unwrap(), "client_id": expect.client_id,
    });
    edit(&mut claims);
    let text = |name: &str| claims[name].as_str().unwrap().to_owned();
    let scope: Vec<String> = serde_json::from_value(claims["scope"].clone()).unwrap();
    let (sub, aud, iss, jti, client) = (
        text("sub"),
        text("aud"),
        text("iss"),
        text("jti"),
        text("client_id"),
    );
    let key = SigningKey::from_pem(pem).unwrap();
    let token = Minter::new(key, &minted.typ)
        .unwrap()
        .mint(&Claims {
            sub: &sub,
            aud: &aud,
            scope: &scope,
            iss: &iss,
            exp: claims["exp"].as_u64().unwrap(),
            iat: claims["iat"].as_u64().unwrap(),
            jti: &jti,
            client_id: &client,
        })
        .unwrap();
    let body = serde_json::json!({
        "username": expect.username, "token_type": "bearer",
        "expires_in": expect.expires_in, "access_token": token,
        "scope": expect.scope_joined, "account_id": expect.account_id(7),
    })
    .to_string();
    let response = Response {
        status: 200,
        body: body.as_bytes(),
        no_store: true,
        close: false,
    };
    let verdict = Checker::new(expect).token(&response, 7, code, now, now);
    (verdict, token)
}

/// A change to a token's claims.
type Edit = dyn Fn(&mut serde_json::Value);

fn expect_for(pem: &str) -> Expect {
    let key = SigningKey::from_pem(pem).unwrap();
    Expect {
        client_id: "app".into(),
        username: "zhangs".into(),
        account_base: "acct".into(),
        scopes: vec!["user:basic".into(), "user:contract".into()],
        scope_joined: "user:basic user:contract".into(),
        expires_in: 1800,
        issuer: "https://sso.example".into(),
        aud: "app".into(),
        typ: "access_token".into(),
        alg: format!("{:?}", key.algorithm()),
        kid: key.kid().to_owned(),
        keys: Keys::new("t:", false),
    }
}

fn new_pem() -> String {
    SigningKey::generate_pem(KeyKind::Ed25519).unwrap()
}

#[test]
fn a_token_with_a_claim_not_the_codes_is_a_violation() {
    let pem = new_pem();
    let expect = expect_for(&pem);
    let (verdict, _) = check(&expect, &pem, &|_| {});
    assert!(verdict.is_ok(), "{:?}", verdict.err());
    let other_codes_jti = expect.keys.new_jti("OC-8").unwrap();
    let edits: [(&str, Box<Edit>); 8] = [
        ("sub", Box::new(|c| c["sub"] = "acct-8".into())),
        ("aud", Box::new(|c| c["aud"] = "other".into())),
        (
            "iss",
            Box::new(|c| c["iss"] = "https://evil.example".into()),
        ),
        ("client_id", Box::new(|c| c["client_id"] = "other".into())),
        (
            "scope",
            Box::new(|c| c["scope"] = serde_json::json!(["user:basic"])),
        ),
        (
            "exp",
            Box::new(|c| c["exp"] = (c["exp"].as_u64().unwrap() + 1).into()),
        ),
        (
            "iat",
            Box::new(|c| {
                c["iat"] = (c["iat"].as_u64().unwrap() - 60).into();
                c["exp"] = (c["exp"].as_u64().unwrap() - 60).into();
            }),
        ),
        (
            "jti",
            Box::new(move |c| c["jti"] = other_codes_jti.clone().into()),
        ),
    ];
    for (claim, edit) in edits {
        let (verdict, _) = check(&expect, &pem, &*edit);
        let violation = verdict.err().unwrap_or_else(|| panic!("{claim} passed"));
        assert!(
            violation.contains(&format!("`{claim}`")),
            "{claim}: {violation}"
        );
    }
}

#[test]
fn a_token_of_another_key_fails_the_header_and_the_signature() {
    let (pem, other) = (new_pem(), new_pem());
    let expect = expect_for(&pem);
    let (verdict, token) = check(&expect, &other, &|_| {});
    let violation = verdict.err().expect("another key's token passed");
    assert!(violation.contains("JOSE header"), "{violation}");

    let ours = SigningKey::from_pem(&pem).unwrap();
    let check_ours = SignatureCheck::from_jwk(ours.public_jwk()).unwrap();
    let (_, good) = check(&expect, &pem, &|_| {});
    assert!(check_ours.verify(&good));
    assert_eq!(check_ours.verify_all(&[good.clone(), token]), 1);
    assert_eq!(
        check_ours.verify_all(&[good.clone(), good.clone(), good]),
        0
    );
    assert_eq!(check_ours.verify_all(&[]), 0);
}

/// Each of the header's `typ`, `alg` and `kid` is checked on its own: a token whose `typ`
/// alone is not the configured one is refused by its header.
#[test]
fn a_token_of_another_typ_fails_the_header() {
    let pem = new_pem();
    let expect = expect_for(&pem);
    let minted = Expect {
        typ: "at+jwt".into(),
        ..expect.clone()
    };
    let (verdict, _) = check_as(&minted, &expect, &pem, &|_| {});
    let violation = verdict.err().expect("a token of another typ passed");
    assert!(
        violation.contains("JOSE header {typ at+jwt,"),
        "{violation}"
    );
}

#[test]
fn healthz_answers_exactly_ok_and_a_refusal_is_named_by_status_and_error() {
    let response = |status, body: &'static [u8]| Response {
        status,
        body,
        no_store: false,
        close: false,
    };
    assert!(healthz(&response(200, br#"{"status":"ok"}"#)).is_ok());
    assert!(healthz(&response(200, br#"{"status":"down"}"#)).is_err());
    let refused = br#"{"error":"invalid_grant","error_description":"used"}"#;
    assert_eq!(error_kind(&response(400, refused)), "400 invalid_grant");
    assert_eq!(
        error_kind(&response(502, b"<html>")),
        "502 (no RFC 6749 error body)"
    );
}
