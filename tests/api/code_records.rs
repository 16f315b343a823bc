//! The code record is the contract with the authorize service: what it may write and how each
//! form is read.

use deadpool_redis::redis;
use serde_json::json;

use crate::each_topology;
use crate::helpers::{
    APP, Answer, ISSUER, RFC7636_VERIFIER, TestApp, code_record, json_request, spawn_app,
    spawn_app_on, spawn_app_with, verify_token,
};
use crate::metrics;
use crate::topology::{OwnRedis, Topology, script_calls};

#[tokio::test]
async fn a_scope_stored_as_one_comma_joined_string_is_granted_as_a_list_answered_with_spaces() {
    let app = spawn_app().await;
    let record = json!({
        "client_id": APP.id,
        "redirect_uri": APP.redirect_uri,
        "username": "zhangs",
        "account_id": "8cneYRM97jU0pqVpJWY",
        "scope": "user:basic,user:contract",
    });

    assert_joined_scope_granted(&app, &record, "user:basic user:contract").await;
}

#[tokio::test]
async fn a_challenge_without_a_method_is_plain_as_rfc7636_says() {
    let app = spawn_app().await;
    let mut record = code_record(&APP);
    record.code_challenge = Some(RFC7636_VERIFIER.into());
    let code = app.write_code(&record).await;
    let mut body = json_request(&APP, &code);
    body["code_verifier"] = RFC7636_VERIFIER.into();

    let answer = Answer::of(app.post_json(&body).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    let token = answer.json["access_token"].as_str().expect("a token");
    let claims = verify_token(token, APP.id, ISSUER).claims;
    assert_eq!(claims["client_id"], APP.id);
    assert_eq!(claims["sub"], record.account_id.as_str());
}

#[tokio::test]
async fn any_sane_string_is_a_code() {
    let app = spawn_app().await;
    for code in [
        "x",
        "código 🔑 with spaces",
        &"A".repeat(200),
        "OC-0000-{}:*?[]",
    ] {
        let record = serde_json::to_string(&code_record(&APP)).unwrap();
        assert!(app.store.put_code(code, &record, 60).await.unwrap());

        let answer = Answer::of(app.exchange(&APP, code).await).await;

        assert_eq!(answer.status, 200, "code {code:?}: {}", answer.text);
        assert!(!app.code_exists(code).await);
    }
}

/// README ("The Cluster key contract"): in Cluster mode a code with `{` or `}` would end or
/// empty its key's hash tag, so it is answered `invalid_grant` without asking Redis. A record
/// sits under the key a code's braces would name (`<prefix>code:{<code>}`), so that a script
/// sent for it would find one; none may be sent (no script call on any master, which the
/// test's own Cluster alone sees: the shared one runs other tests' scripts) and the record is
/// left where it is. Control: a code without braces runs the script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_with_a_brace_is_refused_in_cluster_mode_without_asking_redis() {
    let redis = OwnRedis::start(Topology::Cluster).await;
    let app = spawn_app_with(|s| redis.configure(&mut s.redis)).await;
    let ports = redis.data_ports();
    let record = serde_json::to_string(&code_record(&APP)).unwrap();
    let prefix = &app.settings.redis.key_prefix;

    for code in ["OC-1}x", "OC-{a"] {
        let key = format!("{prefix}code:{{{code}}}");
        let _: () = app
            .query(redis::cmd("SET").arg(&key).arg(&record).arg("EX").arg(60))
            .await;
        let before = scripts_run(&ports).await;

        let answer = Answer::of(app.exchange(&APP, code).await).await;

        assert_eq!(
            (answer.status, answer.error()),
            (400, "invalid_grant"),
            "code {code:?}: {}",
            answer.text
        );
        assert_eq!(
            scripts_run(&ports).await,
            before,
            "code {code:?}: Redis was asked"
        );
        assert!(app.exists(&key).await, "code {code:?}: its key was spent");
    }

    let before = scripts_run(&ports).await;
    let control = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &control).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        scripts_run(&ports).await > before,
        "the control exchange ran no script: the count sees nothing"
    );
}

/// In Cluster mode a code with a brace is refused before the exchange slots and the store (see
/// the test above): `/metrics` times no Redis exchange for it, one that never reached Redis
/// (and whose answer would have told a failing shard's slots that Redis answers). Control: a
/// code without braces is one.
#[tokio::test]
async fn a_code_with_a_brace_in_cluster_mode_is_no_redis_exchange() {
    let app = spawn_app_on(Topology::Cluster).await;
    let series = r#"sso_redis_duration_seconds_count{operation="exchange"}"#;
    let exchanges = || async { metrics::value(&metrics::scrape(&app, &app.address).await, series) };
    let before = exchanges().await;

    for code in ["OC-1}x", "OC-{a"] {
        let answer = Answer::of(app.exchange(&APP, code).await).await;

        assert_eq!(answer.status, 400, "code {code:?}: {}", answer.text);
        assert_eq!(
            exchanges().await,
            before,
            "code {code:?}: timed as a Redis exchange"
        );
    }
    let control = app.issue_code(&APP).await;
    let answer = Answer::of(app.exchange(&APP, &control).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        exchanges().await,
        before + 1.0,
        "the control exchange was not timed"
    );
}

/// The script calls of every instance on `ports` ([`script_calls`]).
async fn scripts_run(ports: &[u16]) -> u64 {
    let ports = ports.to_vec();
    let counting =
        tokio::task::spawn_blocking(move || ports.iter().map(|&p| script_calls(p, None)).sum());
    counting.await.expect("INFO commandstats")
}

#[tokio::test]
async fn the_configured_separators_split_the_record_and_join_the_answer() {
    let app = spawn_app_with(|s| {
        s.token.scope_separator = ",".into();
        s.token.record_scope_separator = " ".into();
    })
    .await;
    let mut record = serde_json::to_value(code_record(&APP)).unwrap();
    record["scope"] = "user:basic user:contract".into();

    assert_joined_scope_granted(&app, &record, "user:basic,user:contract").await;
}

/// The reference implementation adds `user:basic` to every token, and so does the shipped
/// `token.base_scopes`: a record that names only `user:contract` grants both, in the answer,
/// the token, introspection and user info. With `base_scopes = []`, the record's alone.
#[tokio::test]
async fn a_record_without_the_base_scope_is_granted_it_unless_base_scopes_is_empty() {
    for (base_scopes, granted) in [
        (None, vec!["user:contract", "user:basic"]),
        (Some(vec![]), vec!["user:contract"]),
    ] {
        let app = spawn_app_with(|s| {
            if let Some(base_scopes) = base_scopes.clone() {
                s.token.base_scopes = base_scopes;
            }
        })
        .await;
        let mut record = code_record(&APP);
        record.scope = vec!["user:contract".into()];
        let code = app.write_code(&record).await;

        let answer = Answer::of(app.exchange(&APP, &code).await).await;

        assert_eq!(answer.status, 200, "{base_scopes:?}: {}", answer.text);
        assert_eq!(answer.json["scope"], granted.join(" "), "{base_scopes:?}");
        let token = answer.json["access_token"].as_str().unwrap();
        let claims = verify_token(token, APP.id, ISSUER).claims;
        assert_eq!(claims["scope"], json!(granted), "{base_scopes:?}");
        let introspected = app.introspect(&APP, token).await;
        assert_eq!(
            introspected.json["scope"],
            granted.join(" "),
            "{base_scopes:?}"
        );
        let user = app.user_info(token).await;
        assert_eq!(user.status, 200, "{base_scopes:?}: {}", user.text);
        assert_eq!(
            user.json.get("username").and_then(|u| u.as_str()),
            granted
                .contains(&"user:basic")
                .then_some(record.username.as_str()),
            "{base_scopes:?}: {}",
            user.text
        );
    }
}

/// A base scope that no enabled client may have is added to no grant: the start says so,
/// naming it, and grants go on with the record's scopes alone.
#[tokio::test]
async fn a_base_scope_of_no_client_is_warned_of_and_granted_to_none() {
    let log = crate::log_capture::mark();
    let typo = format!("user:base-{}", uuid::Uuid::new_v4().simple());
    let app =
        spawn_app_with(|s| s.token.base_scopes = vec![typo.clone(), "user:basic".into()]).await;
    let warned = log
        .lines()
        .iter()
        .any(|l| l.starts_with("WARN") && l.contains("token.base_scopes") && l.contains(&typo));
    assert!(warned, "no warning naming {typo}");
    assert!(
        !(log.lines().iter()).any(|l| l.contains("token.base_scopes: `user:basic`")),
        "a base scope the clients have was warned of"
    );
    let mut record = code_record(&APP);
    record.scope = vec!["user:contract".into()];
    let code = app.write_code(&record).await;

    let answer = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["scope"], "user:contract user:basic");
}

/// Exchanges a code for `record`, whose scope is `user:basic` and `user:contract` joined as the
/// server's record separator says: the answer joins them as `joined`, the token carries the
/// list.
async fn assert_joined_scope_granted(app: &TestApp, record: &serde_json::Value, joined: &str) {
    let code = "OC-1001-GNen5J2oMC1mJncDvO2tvwYV";
    let written = app.store.put_code(code, &record.to_string(), 60).await;
    assert!(written.unwrap());

    let answer = Answer::of(app.exchange(&APP, code).await).await;

    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["scope"], joined);
    let claims = verify_token(
        answer.json["access_token"].as_str().unwrap(),
        APP.id,
        ISSUER,
    );
    assert_eq!(
        claims.claims["scope"],
        json!(["user:basic", "user:contract"])
    );
}

#[tokio::test]
async fn a_record_that_is_not_utf8_is_malformed_and_leaves_no_token_record() {
    let app = spawn_app().await;
    let code = "OC-not-utf8";
    let mut record = serde_json::to_vec(&code_record(&APP)).unwrap();
    record.splice(2..2, [0xff, 0xfe]);
    write_bytes(&app, code, record).await;

    assert_spent_without_a_token_record(&app, code).await;
}

/// Writes a code record of any bytes, as a writer that does not go through JSON strings could.
async fn write_bytes(app: &TestApp, code: &str, record: Vec<u8>) {
    app.query::<()>(
        redis::cmd("SET")
            .arg(app.store.code_key(code))
            .arg(record)
            .arg("EX")
            .arg(60),
    )
    .await;
}

/// The record is copied into the token record, which introspection and user info read back:
/// a byte that is not UTF-8 in a field nobody reads still makes the code malformed.
#[tokio::test]
async fn a_record_with_a_latin1_byte_in_an_unknown_field_is_malformed() {
    let app = spawn_app().await;
    let code = "OC-latin1-nickname";
    let mut record = serde_json::to_value(code_record(&APP)).unwrap();
    record["nickname"] = "Jos_".into();
    let mut bytes = serde_json::to_vec(&record).unwrap();
    let at = bytes.windows(4).position(|w| w == b"Jos_").unwrap() + 3;
    bytes[at] = 0xe9;
    write_bytes(&app, code, bytes).await;

    assert_spent_without_a_token_record(&app, code).await;
}

/// Unknown fields are skipped alike by the exchange and by introspection and user info: a value
/// there that a full JSON reader refuses (a number out of range, a lone surrogate, deep nesting)
/// neither spoils the token nor is read.
#[tokio::test]
async fn odd_values_in_unknown_fields_leave_the_token_readable() {
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let written = code_record(&APP);
    for (n, odd) in [r#"1e400"#, r#""\ud800""#, deep.as_str()]
        .into_iter()
        .enumerate()
    {
        let fields = serde_json::to_string(&written).unwrap();
        let record = format!(r#"{{"extra":{odd},{}"#, &fields[1..]);
        let code = format!("OC-odd-{n}");
        assert!(app.store.put_code(&code, &record, 60).await.unwrap());

        let answer = Answer::of(app.exchange(&APP, &code).await).await;
        assert_eq!(answer.status, 200, "{odd}: {}", answer.text);
        let token = answer.json["access_token"].as_str().unwrap();

        let introspection = app.introspect(&APP, token).await;
        assert_eq!(
            introspection.json["active"], true,
            "{odd}: {}",
            introspection.text
        );
        let user = app.user_info(token).await;
        assert_eq!(user.status, 200, "{odd}: {}", user.text);
        assert_eq!(user.json["id"], written.account_id, "{odd}");
    }
}

/// An exchange of `code` was refused as `invalid_grant`, spent the code and left no token
/// record.
async fn assert_spent_without_a_token_record(app: &TestApp, code: &str) {
    let answer = Answer::of(app.exchange(&APP, code).await).await;

    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_grant"),
        "{}",
        answer.text
    );
    assert!(!app.code_exists(code).await, "the code is still there");
    assert!(app.keys("token:*").await.is_empty(), "a token record stays");
}

/// A code key the authorize service wrote as another Redis type: spent, `invalid_grant` (not a
/// 503 on every attempt).
#[tokio::test]
async fn a_code_key_that_holds_no_string_is_an_invalid_grant_and_spent() {
    let app = spawn_app().await;
    let code = "OC-1001-HashNotAStringAtAll00000";
    let key = app.store.code_key(code);
    let _: () = app
        .query(redis::cmd("HSET").arg(&key).arg("client_id").arg(APP.id))
        .await;

    assert_spent_without_a_token_record(&app, code).await;
}

/// A token-record key that holds no string (another writer under the key prefix): the code is
/// spent and refused as `invalid_grant`, not answered with a 503 that says "retry" for a code
/// already gone; once spent, the code is unknown, not a 503 on every attempt.
#[tokio::test]
async fn a_token_key_that_holds_no_string_is_an_invalid_grant_not_a_503() {
    assert_a_foreign_token_key_spends_its_code(&spawn_app().await).await;
}

/// The test above on `app` (`replica_acks` runs it with acknowledgements).
pub async fn assert_a_foreign_token_key_spends_its_code(app: &TestApp) {
    let code = app.issue_code(&APP).await;
    let key = app.store.token_key_of_code(&code);
    let _: () = app
        .query(redis::cmd("HSET").arg(&key).arg("a").arg("b"))
        .await;

    let first = Answer::of(app.exchange(&APP, &code).await).await;
    let again = Answer::of(app.exchange(&APP, &code).await).await;

    assert_eq!(
        (first.status, first.error()),
        (400, "invalid_grant"),
        "{}",
        first.text
    );
    assert!(!app.code_exists(&code).await, "the code is still there");
    assert_eq!(
        (again.status, again.error()),
        (400, "invalid_grant"),
        "{}",
        again.text
    );
}

/// A live token whose record key another writer replaced with another Redis type, or with bytes
/// that are not UTF-8 (no JSON record of ours): no live token (introspection inactive, user
/// info 401, revocation 200 with the key left alone), not a 503 on every call for as long as
/// that key lives.
#[tokio::test]
async fn a_token_record_key_another_writer_took_is_no_live_token_not_a_503() {
    let app = spawn_app().await;
    let writes: [(&str, &str, &[&[u8]]); 2] = [
        ("hash", "HSET", &[b"a", b"b"]),
        ("string", "SET", &[b"\xff\xfe{\"jti\""]),
    ];
    for (kind, command, args) in writes {
        let key = assert_a_foreign_record_is_no_live_token(&app, command, args).await;
        let found: String = app.query(redis::cmd("TYPE").arg(&key)).await;
        assert_eq!(found, kind, "the other writer's key changed");
    }
}

/// Takes a live token's record key with `command` `key` `args`, then asks about the token
/// every way; returns the key.
async fn assert_a_foreign_record_is_no_live_token(
    app: &TestApp,
    command: &str,
    args: &[&[u8]],
) -> String {
    let token = app.token_for(&APP).await;
    let claims = verify_token(&token, APP.id, ISSUER).claims;
    let key = app.store.token_key(claims["jti"].as_str().expect("jti"));
    let _: () = app.query(redis::cmd("DEL").arg(&key)).await;
    let _: () = app.query(redis::cmd(command).arg(&key).arg(args)).await;

    let introspected = app.introspect(&APP, &token).await;
    let shown = app.user_info(&token).await;
    let revoked = app.revoke(&APP, &token, None).await;

    assert_eq!(
        (introspected.status, &introspected.json),
        (200, &json!({"active": false})),
        "{}",
        introspected.text
    );
    assert_eq!(
        (shown.status, shown.error()),
        (401, "invalid_token"),
        "{}",
        shown.text
    );
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    key
}

each_topology!(a_token_key_holding_another_writers_string_is_an_invalid_grant_not_a_503);

/// A token-record key that holds a string we did not write (another writer under the key
/// prefix): no token of this code to revoke, so the code is spent and refused as
/// `invalid_grant`, and the string is left alone. Read as a replay, its "jti" named a key in
/// another hash slot, and in a Cluster the revocation's `CROSSSLOT` was a 503 that said "retry"
/// for a code already spent, on every attempt; and bytes that are not UTF-8 where a `jti`
/// would be made the script's reply one the redis crate refuses: a 503 too, as was a "jti" of
/// `OK`, whose status reply the crate reads as another kind of value.
async fn a_token_key_holding_another_writers_string_is_an_invalid_grant_not_a_503(
    topology: Topology,
) {
    let app = spawn_app_on(topology).await;
    let foreign_values: [&[u8]; 5] = [
        b"not a token record",
        br#"{"jti":"","client_id":"demo-app"}"#,
        br#"{"jti":"abc","client_id":"demo-app"}"#,
        // Quoted back as the status reply `+OK`, which the redis crate reads as `Value::Okay`.
        br#"{"jti":"OK","client_id":"demo-app"}"#,
        b"{\"jti\":\"\xff\xfe-foreign\"}",
    ];
    for bytes in foreign_values {
        let foreign = String::from_utf8_lossy(bytes);
        let code = app.issue_code(&APP).await;
        let key = app.store.token_key_of_code(&code);
        let _: () = app
            .query(redis::cmd("SET").arg(&key).arg(bytes).arg("EX").arg(60))
            .await;

        let first = Answer::of(app.exchange(&APP, &code).await).await;
        let again = Answer::of(app.exchange(&APP, &code).await).await;

        for answer in [&first, &again] {
            assert_eq!(
                (answer.status, answer.error()),
                (400, "invalid_grant"),
                "{foreign}: {}",
                answer.text
            );
        }
        assert!(
            !app.code_exists(&code).await,
            "{foreign}: the code is still there"
        );
        let kept: Option<Vec<u8>> = app.query(redis::cmd("GET").arg(&key)).await;
        assert_eq!(
            kept.as_deref(),
            Some(bytes),
            "the other writer's string changed"
        );
    }
}

/// A record over 64 KiB is spent and refused, and not copied into a token record.
#[tokio::test]
async fn a_code_record_over_64_kib_is_an_invalid_grant_and_writes_nothing() {
    let app = spawn_app().await;
    let code = "OC-1001-HugeRecordOver64KiB00000";
    let mut record = serde_json::to_value(code_record(&APP)).unwrap();
    record["name"] = json!("x".repeat(70_000));
    let written = app.store.put_code(code, &record.to_string(), 60).await;
    assert!(written.unwrap());

    assert_spent_without_a_token_record(&app, code).await;
}

/// A code issued longer ago than `token.code_max_age_secs` (plus leeway) is expired although the
/// authorize service gave its record a longer TTL; one past the maximum age but inside the
/// leeway is exchanged.
#[tokio::test]
async fn a_code_older_than_the_maximum_age_is_expired_whatever_its_ttl() {
    let app = spawn_app_with(|s| {
        s.token.code_max_age_secs = 120;
        s.token.leeway_secs = 5;
    })
    .await;
    let now = sso_token::clock::unix_now();
    let mut old = code_record(&APP);
    old.issued_at = now - 130;
    let old_code = app.write_code(&old).await;
    let mut recent = code_record(&APP);
    // 122 s: past the 120 s maximum age, inside the 5 s leeway.
    recent.issued_at = now - 122;
    let recent_code = app.write_code(&recent).await;

    let answer = Answer::of(app.exchange(&APP, &recent_code).await).await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    let answer = Answer::of(app.exchange(&APP, &old_code).await).await;
    assert_eq!(
        (answer.status, answer.error()),
        (400, "invalid_grant"),
        "{}",
        answer.text
    );
    assert!(
        answer.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{}",
        answer.text
    );
    assert!(
        !app.code_exists(&old_code).await,
        "the old code is still there"
    );
}

/// A record whose grant would not fit in a token that introspection and user info read (here
/// an account id, the token's `sub`, of 4,000 bytes): `invalid_grant`, and its token record is
/// gone, instead of a 200 with a token the service itself then calls inactive.
#[tokio::test]
async fn a_grant_too_large_for_a_token_is_an_invalid_grant_and_leaves_no_token_record() {
    let app = spawn_app().await;
    let code = "OC-1001-FourThousandByteSubject0";
    let mut record = serde_json::to_value(code_record(&APP)).unwrap();
    record["account_id"] = json!("a".repeat(4000));
    let written = app.store.put_code(code, &record.to_string(), 60).await;
    assert!(written.unwrap());

    assert_spent_without_a_token_record(&app, code).await;
}
