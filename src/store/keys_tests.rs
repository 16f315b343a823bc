use deadpool_redis::redis::cluster_routing::Slot;

use super::*;

#[test]
fn slots_match_redis_cluster_keyslot() {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert_eq!(crc16(b"123456789"), 0x31C3);
    assert_eq!(slot(b"foo"), 12182);
    assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
    // An empty `{}` is no hash tag: the whole key is hashed (the spec's own example), not the
    // `bar` of the next pair of braces. 8363 is what `CLUSTER KEYSLOT foo{}{bar}` answers
    // (redis-server 7.0, cluster mode); `bar` alone is in slot 5061.
    assert_eq!(slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % 16384);
    assert_eq!(slot(b"foo{}{bar}"), 8363);
    assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    for key in [
        "sso:code:{OC-1001-abc}",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "}{",
        "",
        "plain",
    ] {
        assert_eq!(
            Slot::new(slot(key.as_bytes())),
            Some(Slot::for_key(key)),
            "{key}"
        );
    }
}

#[test]
fn every_slot_has_a_tag_that_hashes_to_it() {
    let tags = slot_tags();
    assert_eq!(tags.len(), SLOTS);
    for (slot_number, tag) in tags.iter().enumerate() {
        assert!(
            tag.iter().all(u8::is_ascii_alphanumeric),
            "slot {slot_number}"
        );
        assert_eq!(usize::from(slot(tag)), slot_number);
    }
}

#[test]
fn standalone_keys_are_plain_and_jtis_untagged() {
    let keys = Keys::new("sso:", false);
    assert_eq!(keys.code("OC-1"), "sso:code:OC-1");
    let jti = keys.new_jti("OC-1").unwrap();
    assert_eq!(jti.len(), 36);
    assert_eq!(keys.token(&jti), format!("sso:token:{}", &jti[..12]));
    assert_eq!(keys.token(&jti), keys.token_of_code("OC-1"));
}

#[test]
fn a_jti_is_its_codes_hash_then_random_bits_of_its_own() {
    let (standalone, cluster) = (Keys::new("sso:", false), Keys::new("other:", true));
    let code = "OC-1001-GNen5J2oMC1mJncDvO2tvwYV";
    let (jti, again) = (
        standalone.new_jti(code).unwrap(),
        standalone.new_jti(code).unwrap(),
    );
    assert_ne!(jti, again, "every exchange its own jti");
    assert_eq!(jti[..12], again[..12], "one record key per code");
    assert_eq!(standalone.token(&jti), standalone.token(&again));
    let other = standalone
        .new_jti("OC-1001-GNen5J2oMC1mJncDvO2tvwYW")
        .unwrap();
    assert_ne!(jti[..12], other[..12]);
    // 72 bits of SHA-256 over a domain string and the code, not of the code alone.
    let mut input = b"sso-token jti\0".to_vec();
    input.extend_from_slice(code.as_bytes());
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    assert_eq!(jti[..12], URL_SAFE_NO_PAD.encode(&hash.as_ref()[..9]));
    let bare = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, code.as_bytes());
    assert_ne!(jti[..12], URL_SAFE_NO_PAD.encode(&bare.as_ref()[..9]));
    assert_eq!(standalone.record_id(code), jti[..12]);
    // In a Cluster the same bits after the slot tag; the prefix changes neither.
    assert_eq!(cluster.record_id(code)[TAG_LEN..], jti[..12]);
}

#[test]
fn cluster_keys_of_one_exchange_share_the_codes_slot() {
    let keys = Keys::new("sso:", true);
    for code in ["OC-1001-GNen5J2oMC1mJncDvO2tvwYV", "ü-code", "a b", "x"] {
        assert!(keys.admits(code));
        let code_key = keys.code(code);
        let jti = keys.new_jti(code).unwrap();
        assert_eq!(jti.len(), TAG_LEN + 36);
        assert!(
            jti.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{jti}"
        );
        let token_key = keys.token(&jti);
        assert_eq!(
            token_key,
            format!("sso:token:{{{}}}{}", &jti[..3], &jti[3..15])
        );
        assert_eq!(token_key, keys.token_of_code(code));
        assert_eq!(
            slot(token_key.as_bytes()),
            slot(code_key.as_bytes()),
            "{code}"
        );
        assert_eq!(keys.slot_of_token(&jti), keys.slot_of_code(code), "{code}");
        assert_eq!(
            Keys::new("sso:", false).slot_of_token(&jti),
            None,
            "no slots outside Cluster"
        );
    }
    assert_eq!(keys.code("OC-1"), "sso:code:{OC-1}");
}

#[test]
fn cluster_mode_excludes_codes_with_braces() {
    let (cluster, standalone) = (Keys::new("sso:", true), Keys::new("sso:", false));
    for code in ["}", "}x", "a}b", "{x}", "{"] {
        assert!(!cluster.admits(code), "{code}");
        assert!(standalone.admits(code), "{code}");
    }
}

#[test]
fn any_jti_maps_to_a_key_without_panicking() {
    let keys = Keys::new("p:", true);
    assert_eq!(keys.token(""), "p:token:");
    assert_eq!(keys.token("ab"), "p:token:ab");
    assert_eq!(keys.token("abc"), "p:token:{abc}");
    assert_eq!(keys.token("aaé"), "p:token:aaé");
    // The tag and 12 characters of the code's hash name the record; the rest is random.
    assert_eq!(
        keys.token("abcdefghijklmnopqrstuvwxyz0123456789ABC"),
        "p:token:{abc}defghijklmno"
    );
    // A cut inside a character keeps the whole string.
    assert_eq!(keys.token("aaaaaaaaaaaaaaé"), "p:token:{aaa}aaaaaaaaaaaé");
}

#[test]
fn jti_len_is_the_length_of_every_jti_issued() {
    for tagged in [false, true] {
        let keys = Keys::new("p:", tagged);
        for code in ["OC-1", "OC-1001-GNen5J2oMC1mJncDvO2tvwYV", "ü"] {
            assert_eq!(keys.new_jti(code).unwrap().len(), jti_len(tagged), "{code}");
        }
    }
}

#[test]
fn a_jti_with_the_older_12_character_random_part_finds_the_same_record() {
    for tagged in [false, true] {
        let keys = Keys::new("p:", tagged);
        let jti = keys.new_jti("OC-1001-GNen5J2oMC1mJncDvO2tvwYV").unwrap();
        let id_len = jti.len() - RANDOM_CHARS;
        assert_eq!(RANDOM_CHARS, 24, "144 random bits");
        let older = format!("{}{}", &jti[..id_len], &jti[id_len..id_len + 12]);
        assert_eq!(keys.token(&older), keys.token(&jti), "{older} and {jti}");
        assert_eq!(
            keys.token(&jti),
            keys.token_of_code("OC-1001-GNen5J2oMC1mJncDvO2tvwYV")
        );
    }
}

#[test]
fn throttle_keys_name_a_client_id_by_its_hash_and_an_address_as_it_is() {
    let keys = Keys::new("sso:", true);
    // A secret pasted into `client_id`, with braces that would pick a Cluster slot.
    let pasted = "{s3cr3t}-Vx9q";
    let key = keys.throttle_client(pasted);
    assert!(key.starts_with("sso:throttle:client:"), "{key}");
    assert!(!key.contains("s3cr3t") && !key.contains('{'), "{key}");
    assert_eq!(key.len(), "sso:throttle:client:".len() + 43, "{key}");
    assert_eq!(
        key,
        keys.throttle_client(pasted),
        "the same id, the same counter"
    );
    assert_ne!(key, keys.throttle_client("{s3cr3t}-Vx9r"));
    assert_eq!(
        keys.throttle_address("2001:db8::"),
        "sso:throttle:addr:2001:db8::"
    );
    let hash = &key["sso:throttle:client:".len()..];
    assert_eq!(
        keys.throttle_client_at(pasted, "2001:db8::"),
        format!("sso:throttle:pair:{hash}@2001:db8::"),
        "the pair's key: the id's hash, then the address"
    );
}

#[test]
fn keys_say_whether_they_carry_cluster_hash_tags() {
    assert!(Keys::new("sso:", true).tagged());
    assert!(!Keys::new("sso:", false).tagged());
}

#[test]
fn the_revoking_key_sits_beside_the_token_record_in_its_slot() {
    for tagged in [false, true] {
        let keys = Keys::new("sso:", tagged);
        let token_key = keys.token_of_code("OC-1001-GNen5J2oMC1mJncDvO2tvwYV");
        let revoking = keys.revoking(&token_key);
        assert!(
            revoking.starts_with(&token_key) && revoking != token_key,
            "{revoking}"
        );
        // In a Cluster, where the one script that deletes the record writes it too.
        if tagged {
            assert_eq!(
                slot(revoking.as_bytes()),
                slot(token_key.as_bytes()),
                "{revoking}"
            );
        }
    }
}

#[test]
fn the_throttle_decoy_is_a_key_of_the_deployment_apart_from_every_clients() {
    let keys = Keys::new("sso:", true);
    let decoy = keys.throttle_decoy();
    assert!(decoy.starts_with("sso:throttle:"), "{decoy}");
    assert_eq!(decoy, Keys::new("sso:", true).throttle_decoy());
    assert_ne!(decoy, Keys::new("other:", true).throttle_decoy());
    for id in ["", "decoy", "app"] {
        assert_ne!(decoy, keys.throttle_client(id), "{id}");
        assert_ne!(decoy, keys.throttle_client_at(id, "127.0.0.1"), "{id}");
    }
}
