use argon2::{Algorithm, Params, Version};

use super::*;

const SECRET: &str = "argon2-secret-Jq4Vn8Lc2Xw6";

/// An Argon2id PHC string with small parameters: these tests are about slots, not cost.
fn cheap_argon2(secret: &str) -> SecretHash {
    let params = Params::new(1024, 1, 1, None).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = b"sixteen byte slt";
    let phc = argon2
        .hash_password_with_salt(secret.as_bytes(), salt)
        .unwrap()
        .to_string();
    SecretHash::parse(&phc).unwrap()
}

#[tokio::test]
async fn argon2_verifies_the_right_secret_only() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(1));
    assert!(hash.verify("app", SECRET, &limit).await.unwrap());
    assert!(!hash.verify("app", "wrong", &limit).await.unwrap());
    assert!(
        hash.verify("app", SECRET, &limit).await.unwrap(),
        "remembered"
    );
}

/// On paused time (as the one below): a loaded machine must not stretch the wait past a bound.
#[tokio::test(start_paused = true)]
async fn with_every_slot_taken_a_verification_is_refused_after_a_short_wait() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(1));
    let _taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();

    let started = tokio::time::Instant::now();
    let outcome = hash.verify("app", "wrong", &limit).await;

    assert!(matches!(outcome, Err(VerifyError::Busy)), "{outcome:?}");
    let waited = started.elapsed();
    assert!(
        waited >= ARGON2_WAIT && waited < ARGON2_WAIT * 2,
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_remembered_secret_needs_no_slot() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(1));
    assert!(hash.verify("app", SECRET, &limit).await.unwrap());
    let _taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();

    assert!(hash.verify("app", SECRET, &limit).await.unwrap());
    assert!(matches!(
        hash.verify("app", "wrong", &limit).await,
        Err(VerifyError::Busy)
    ));
}

#[tokio::test]
async fn the_same_hash_loaded_again_inherits_the_remembered_secret_another_does_not() {
    let phc = |hash: &SecretHash| match hash {
        SecretHash::Argon2 { phc, .. } => phc.clone(),
        SecretHash::Sha256(_) => unreachable!("an Argon2 hash"),
    };
    let (older, limit) = (cheap_argon2(SECRET), Argon2Limit::new(1));
    assert!(older.verify("app", SECRET, &limit).await.unwrap());
    let same = SecretHash::parse(&phc(&older)).unwrap();
    let other = cheap_argon2("another-secret-Rk2Wd7");
    same.inherit(&older);
    other.inherit(&older);
    let _taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();

    assert!(
        same.verify("app", SECRET, &limit).await.unwrap(),
        "inherited"
    );
    assert!(
        matches!(
            other.verify("app", SECRET, &limit).await,
            Err(VerifyError::Busy)
        ),
        "a changed hash remembers nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiting_verification_finds_the_secret_remembered_meanwhile() {
    // Argon2 would refuse this secret (the hash is of another): only the look in the memory
    // after the wait can let it pass.
    const REMEMBERED_ONLY: &str = "remembered-only-Hx5Tb9";
    let (hash, limit) = (Arc::new(cheap_argon2(SECRET)), Argon2Limit::new(1));
    let taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();
    let waiting = tokio::spawn({
        let (hash, limit) = (Arc::clone(&hash), limit.clone());
        async move { hash.verify("app", REMEMBERED_ONLY, &limit).await }
    });
    // One thread: while this sleeps, the task runs until it waits for the slot, having found
    // nothing remembered before it.
    tokio::time::sleep(ARGON2_WAIT / 4).await;
    assert!(!waiting.is_finished(), "it waits for the slot");
    let SecretHash::Argon2 { verified, .. } = &*hash else {
        unreachable!("an Argon2 hash")
    };
    // As if the request holding the slot had just verified this secret.
    *verified.write().unwrap() = Some(sha256(REMEMBERED_ONLY));
    drop(taken);

    assert!(waiting.await.unwrap().unwrap());
}

#[tokio::test]
async fn the_slot_stays_taken_until_argon2_is_done_even_if_the_request_is_dropped() {
    // Costly enough (64 MiB, 4 passes) to be still running when the request is dropped.
    let params = Params::new(65_536, 4, 1, None).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = b"sixteen byte slt";
    let phc = argon2
        .hash_password_with_salt(b"x", salt)
        .unwrap()
        .to_string();
    let (hash, limit) = (
        Arc::new(SecretHash::parse(&phc).unwrap()),
        Argon2Limit::new(1),
    );
    let abandoned = tokio::spawn({
        let (hash, limit) = (Arc::clone(&hash), limit.clone());
        async move { hash.verify("app", "wrong", &limit).await }
    });
    // On this single-threaded runtime the task gets here only once Argon2 is under way.
    let taken = tokio::time::timeout(Duration::from_secs(30), async {
        while limit.slots.available_permits() == 1 {
            tokio::task::yield_now().await;
        }
    });
    taken.await.expect("the verification takes the slot");
    abandoned.abort();
    tokio::time::sleep(Duration::from_millis(5)).await;

    assert_eq!(
        limit.slots.available_permits(),
        0,
        "freed before Argon2 ended"
    );
    let back = tokio::time::timeout(Duration::from_secs(30), async {
        while limit.slots.available_permits() == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    back.await.expect("the slot is given back when Argon2 ends");
}

#[tokio::test]
async fn a_client_id_takes_one_slot_at_most_and_others_take_the_rest() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(2));
    let _flooded = limit.turn_of("flooded").acquire_owned().await.unwrap();

    assert!(matches!(
        hash.verify("flooded", "wrong", &limit).await,
        Err(VerifyError::Busy)
    ));
    assert_eq!(limit.slots.available_permits(), 2, "its turn, not a slot");
    assert!(hash.verify("other", SECRET, &limit).await.unwrap());
}

/// Another id's verification drops only the idle turns: a turn that a verification holds is
/// kept, so its id still waits for it instead of getting a second slot.
#[tokio::test]
async fn a_turn_in_use_outlives_other_ids_coming_and_going() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(2));
    let _flooded = limit.turn_of("flooded").acquire_owned().await.unwrap();

    assert!(hash.verify("other", SECRET, &limit).await.unwrap());

    assert!(matches!(
        hash.verify("flooded", "wrong", &limit).await,
        Err(VerifyError::Busy)
    ));
}

#[tokio::test]
async fn only_the_turns_in_use_are_kept() {
    let (hash, limit) = (cheap_argon2(SECRET), Argon2Limit::new(1));
    for id in ["a", "b", "c"] {
        assert!(!hash.verify(id, "wrong", &limit).await.unwrap());
    }
    let held = limit.turn_of("d");
    let kept: Vec<String> = limit.turns.lock().unwrap().keys().cloned().collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    drop(held);
}

#[test]
fn one_slot_per_two_cpus_and_at_least_one() {
    let cpus = std::thread::available_parallelism().map_or(1, NonZero::get);
    let slots = Argon2Limit::half_the_cpus().slots.available_permits();
    assert_eq!(slots, (cpus / 2).max(1));
    assert!(slots < cpus || cpus == 1, "a core is left to the requests");
}

#[test]
fn a_plain_secret_no_request_could_send_is_refused() {
    let longest = format!("plain:{}", "s".repeat(MAX_SECRET));
    assert!(SecretHash::parse(&longest).is_ok());
    let over = format!("plain:{}", "s".repeat(MAX_SECRET + 1));
    let error = SecretHash::parse(&over).err().unwrap();
    assert!(error.contains("512"), "{error}");
    // An empty secret is no secret at all (RFC 6749 §3.2), stored plain or hashed.
    for empty in ["plain:".to_owned(), hash_secret_sha256("")] {
        let error = SecretHash::parse(&empty).err().unwrap();
        assert!(error.contains("empty"), "{empty}: {error}");
    }
}

#[test]
fn a_sha256_hash_is_64_hex_digits_and_nothing_else() {
    let stored = hash_secret_sha256("s3cret");
    let hex = stored.strip_prefix("sha256:").unwrap();
    let verifies = |stored: &str| {
        SecretHash::parse(stored).map(
            |hash| matches!(hash, SecretHash::Sha256(d) if bool::from(d.ct_eq(&sha256("s3cret")))),
        )
    };
    assert_eq!(verifies(&stored), Ok(true));
    assert_eq!(
        verifies(&format!("sha256:{}", hex.to_uppercase())),
        Ok(true)
    );
    // `+f` parses as a number, `f+` does not: neither is a pair of hex digits.
    for bad in ["+f", "-f", " f", "fg", "é"] {
        let broken = format!("sha256:{bad}{}", &hex[bad.len()..]);
        let error = SecretHash::parse(&broken).err().unwrap();
        assert!(error.contains("64 hex digits"), "{broken}: {error}");
    }
}

#[test]
fn an_argon2_hash_that_asks_for_too_much_memory_or_time_is_refused() {
    let hash = |m_kib: u32| {
        let params = Params::new(m_kib, 1, 1, None).unwrap();
        let salt = b"0123456789abcdef";
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(SECRET.as_bytes(), salt)
            .unwrap()
            .to_string()
    };
    // Only the PHC string is read, so a cheap hash with its `m` rewritten stands for a big one.
    let phc = hash(64);
    assert!(SecretHash::parse(&phc.replace("m=64", "m=262144")).is_ok());
    let error = SecretHash::parse(&phc.replace("m=64", "m=1048576"))
        .err()
        .unwrap();
    assert!(error.contains("m=1048576"), "{error}");
    // The same for the passes over that memory.
    assert!(SecretHash::parse(&phc.replace("t=1", "t=10")).is_ok());
    let error = SecretHash::parse(&phc.replace("t=1", "t=100000"))
        .err()
        .unwrap();
    assert!(error.contains("t=100000"), "{error}");
}

#[test]
fn an_argon2_hash_that_could_verify_no_secret_is_refused() {
    let params = Params::new(64, 1, 1, None).unwrap();
    let salt = b"0123456789abcdef";
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(SECRET.as_bytes(), salt)
        .unwrap()
        .to_string();
    assert!(SecretHash::parse(&phc).is_ok());
    let without_hash = &phc[..phc.rfind('$').unwrap()];
    // (PHC string, what the refusal says)
    let cases = [
        (without_hash.to_owned(), "lacks its salt or its hash"),
        (phc.replace("t=1", "t=0"), "invalid parameters"),
        (phc.replace("m=64", "m=4"), "invalid parameters"),
        (phc.replace("p=1", "p=0"), "invalid parameters"),
    ];
    for (stored, said) in cases {
        let error = SecretHash::parse(&stored).err();
        assert!(
            error.as_deref().is_some_and(|e| e.contains(said)),
            "{stored}: {error:?}"
        );
    }
}

#[test]
fn debug_output_shows_no_digest_of_the_secret() {
    let stored = hash_secret_sha256(SECRET);
    let shown = format!("{:?}", SecretHash::parse(&stored).unwrap());
    // Debug of a byte array prints decimals: look for the first bytes either way.
    let digest = sha256(SECRET).bytes();
    assert!(!shown.contains(&stored[7..23]), "{shown}");
    assert!(
        !shown.contains(&format!("{}, {}, {}", digest[0], digest[1], digest[2])),
        "{shown}"
    );
    assert!(shown.contains("Sha256"), "{shown}");
}

/// Made by the reference implementation (Debian's `argon2` 20190702): `echo -n 'correct horse
/// battery staple' | argon2 'sixteen byte slt' -id -t 2 -k 19456 -p 1 -l 32 -e`. Hashes made
/// elsewhere must keep verifying across releases of the argon2 crate, and `hash-secret --argon2`
/// must make what other implementations verify.
const REFERENCE_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2l4dGVlbiBieXRlIHNsdA$\
                             k81ovk8fkH1PorA/36zCkEKia28tQyMQYijfaS5RQy4";

#[tokio::test]
async fn a_hash_made_by_the_reference_implementation_verifies_its_secret_only() {
    let (hash, limit) = (
        SecretHash::parse(REFERENCE_PHC).unwrap(),
        Argon2Limit::new(1),
    );
    assert!(!hash.verify("app", "correct horse", &limit).await.unwrap());
    assert!(
        hash.verify("app", "correct horse battery staple", &limit)
            .await
            .unwrap()
    );
}

#[test]
fn hash_secret_parameters_give_the_reference_implementation_string_for_the_same_salt() {
    let phc = Argon2::default()
        .hash_password_with_salt(b"correct horse battery staple", b"sixteen byte slt")
        .unwrap()
        .to_string();
    assert_eq!(phc, REFERENCE_PHC);
}

/// `hash-secret --argon2`'s string: a PHC string with a fresh salt each time, that verifies
/// the secret it was made of and no other.
#[tokio::test]
async fn an_argon2_hash_made_here_has_its_own_salt_and_verifies_its_secret_only() {
    let (phc, again) = (
        hash_secret_argon2(SECRET).unwrap(),
        hash_secret_argon2(SECRET).unwrap(),
    );
    assert_ne!(phc, again, "the same salt twice");
    let (hash, limit) = (SecretHash::parse(&phc).unwrap(), Argon2Limit::new(1));
    assert!(!hash.verify("app", "wrong", &limit).await.unwrap());
    assert!(hash.verify("app", SECRET, &limit).await.unwrap());
}

/// A client's secret, then its previous ones: a previous secret that passed once passes
/// without a slot, with no Argon2 for the secret before it; a wrong secret is verified against
/// each Argon2 hash, a previous one as well, each only with its turn and a slot.
#[tokio::test]
async fn a_remembered_previous_secret_passes_without_argon2_for_the_secret_before_it() {
    const NEW: &str = "argon2-new-secret-Wd3Kp8";
    let (current, previous, limit) = (cheap_argon2(NEW), cheap_argon2(SECRET), Argon2Limit::new(1));
    let (current, previous, limit) = (&current, &previous, &limit);
    let position = move |presented| {
        SecretHash::position_of([current, previous].into_iter(), "app", presented, limit)
    };
    assert_eq!(position(SECRET).await.unwrap(), Some(1));
    assert_eq!(position(NEW).await.unwrap(), Some(0));
    assert_eq!(position("wrong").await.unwrap(), None);
    let _taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();

    assert_eq!(position(SECRET).await.unwrap(), Some(1), "remembered");
    assert_eq!(position(NEW).await.unwrap(), Some(0), "remembered");
    assert!(matches!(position("wrong").await, Err(VerifyError::Busy)));
    let sha256_first = SecretHash::Sha256(sha256(NEW));
    let wrong =
        SecretHash::position_of([&sha256_first, previous].into_iter(), "app", "wrong", limit);
    assert!(
        matches!(wrong.await, Err(VerifyError::Busy)),
        "a previous Argon2 secret waits for a slot too"
    );
}

/// A burst on a previous secret, as after a restart mid-rotation: the requests that waited for
/// the turn find it remembered by the one ahead, whichever hash it passed, and run no Argon2.
/// (Each hash verified in its own turn, a waiting request ran Argon2 on the secret before it
/// first, and a burst overran `ARGON2_WAIT`.) Here Argon2 of the current hash would pass too:
/// only the look at every hash's memory after the wait gives the previous one's position.
#[tokio::test(start_paused = true)]
async fn a_waiting_verification_finds_a_previous_secret_remembered_meanwhile() {
    const PRESENTED: &str = "presented-secret-Rv6Nq2";
    let (current, previous) = (cheap_argon2(PRESENTED), Arc::new(cheap_argon2(SECRET)));
    let (current, limit) = (Arc::new(current), Argon2Limit::new(1));
    let taken = Arc::clone(&limit.slots).acquire_owned().await.unwrap();
    let waiting = tokio::spawn({
        let (current, previous, limit) =
            (Arc::clone(&current), Arc::clone(&previous), limit.clone());
        async move {
            let hashes = [&*current, &*previous].into_iter();
            SecretHash::position_of(hashes, "app", PRESENTED, &limit).await
        }
    });
    tokio::time::sleep(ARGON2_WAIT / 4).await;
    assert!(!waiting.is_finished(), "it waits for the turn");
    let SecretHash::Argon2 { verified, .. } = &*previous else {
        unreachable!("an Argon2 hash")
    };
    // As if the request holding the turn had just verified the previous secret.
    *verified.write().unwrap() = Some(sha256(PRESENTED));
    drop(taken);

    assert_eq!(waiting.await.unwrap().unwrap(), Some(1));
}
