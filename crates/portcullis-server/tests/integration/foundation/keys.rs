//! Issue 17 item 4: the signing keys. `keys rotate` publishes the next keys before they sign
//! (pre-publication), `keys list` shows their dates, and the private keys are encrypted at rest
//! under a key-encryption key (AES-256-GCM).

use super::*;

use base64::Engine as _;

/// The rows of `signing_keys`: (kid, alg, stored private key).
async fn stored_keys(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("portcullis.db").display()))
        .await
        .unwrap();
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as("SELECT kid, alg, pkcs8 FROM signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// Whether `der` is a PKCS#8 private key of `alg`, by aws-lc's own parsers.
fn parses_as_pkcs8(alg: &str, der: &[u8]) -> bool {
    use aws_lc_rs::signature;
    match alg {
        "ES256" => signature::EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der).is_ok(),
        "PS256" => signature::RsaKeyPair::from_pkcs8(der).is_ok(),
        "EdDSA" | "Ed25519" => signature::Ed25519KeyPair::from_pkcs8(der).is_ok(),
        other => panic!("unexpected stored algorithm {other}"),
    }
}

/// A `keys list` line's fields by name.
struct Listed {
    kid: String,
    state: String,
    created: String,
    activates: String,
    retired: String,
    removed: String,
}

fn keys_list(s: &Server) -> Vec<Listed> {
    let out = s.cli(&["keys", "list"], None);
    assert!(out.status.success(), "keys list: {}", stderr_of(&out));
    stdout_of(&out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 7, "keys list line {l:?}");
            let value = |i: usize, label: &str| {
                f[i].strip_prefix(&format!("{label} "))
                    .unwrap_or_else(|| panic!("field {i} of {l:?} is not `{label} ...`"))
                    .to_owned()
            };
            for field in &f[3..7] {
                let v = field.split(' ').nth(1).unwrap_or_default();
                assert!(v == "-" || is_rfc3339_utc(v), "not RFC 3339 UTC: {v:?} in {l:?}");
            }
            Listed {
                kid: f[0].to_owned(),
                state: f[2].to_owned(),
                created: value(3, "created"),
                activates: value(4, "activates"),
                retired: value(5, "retired"),
                removed: value(6, "removed"),
            }
        })
        .collect()
}

fn is_rfc3339_utc(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && v.chars().filter(|c| c.is_ascii_digit()).count() == 14
}

/// The `kid` of the ES256 JARM response of a fresh authorization.
async fn jarm_kid(s: &Server, rp: &Rp) -> String {
    let par = Par::new(rp).set("response_mode", "jwt");
    let request_uri = par.push(s, rp).await;
    let cb = Browser::default().run(s, &rp.client_id, &request_uri, "allow").await;
    let q = query(&cb);
    let jwt = q.get("response").unwrap_or_else(|| panic!("no JARM response: {cb}"));
    jwt_header(jwt)["kid"].as_str().unwrap().to_owned()
}

async fn id_token_kid(s: &Server, rp: &Rp) -> String {
    jwt_header(&id_token_of(s, rp).await)["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Issue 17 item 4: `keys rotate` publishes the next keys at once, but id_tokens and JARM
/// responses are signed with the current keys until `keys.prepublication` has passed; then
/// the new keys sign, on the running server, without a reload or restart. `keys list` shows
/// each key's state and dates.
#[tokio::test]
async fn keys_rotate_publishes_the_next_keys_before_they_sign() {
    const PREPUBLICATION: i64 = 25;
    let mut s = Server::start_with(&[("PORTCULLIS_KEYS_PREPUBLICATION", "25")]).await;
    let rp = dcr_client(&s).await;
    let old = kids(&server_jwks(&s).await);
    let old_kid = id_token_kid(&s, &rp).await;
    assert!(old.contains(&old_kid));

    let out = s.cli(&["keys", "rotate"], None);
    let rotated_at = now();
    assert!(out.status.success(), "keys rotate: {}", stderr_of(&out));
    let text = stdout_of(&out);
    let new: HashSet<String> = text.lines().map(|l| l.split('\t').next().unwrap().to_owned()).collect();
    assert_eq!(new.len(), 3, "{text}");
    assert!(new.is_disjoint(&old), "{text}");
    assert!(text.lines().all(|l| l.contains("next")), "{text}");

    let listed = keys_list(&s);
    assert_eq!(listed.len(), 6);
    let activation = listed.iter().find(|k| new.contains(&k.kid)).unwrap().activates.clone();
    for k in &listed {
        if new.contains(&k.kid) {
            assert_eq!(k.state, "next", "{}", k.kid);
            assert_eq!((k.retired.as_str(), k.removed.as_str()), ("-", "-"));
            assert_eq!(k.activates, activation, "one activation for all new keys");
            assert!(
                k.created < k.activates,
                "created {} activates {}",
                k.created,
                k.activates
            );
        } else {
            assert!(old.contains(&k.kid));
            assert_eq!(k.state, "active", "the old keys sign until the switch");
            assert_eq!(k.retired, activation, "retired at the new keys' activation");
            assert!(
                k.removed > k.retired,
                "removed after a grace: {} {}",
                k.removed,
                k.retired
            );
            assert_eq!(k.activates, k.created, "signing since their creation");
        }
    }

    // a restart loads the rotation at once (a running server's 30 s reload does the same)
    s.restart().await;
    let published = kids(&server_jwks(&s).await);
    assert_eq!(published.len(), 6, "old and next keys published");
    assert!(published.is_superset(&new) && published.is_superset(&old));
    assert_eq!(
        id_token_kid(&s, &rp).await,
        old_kid,
        "the id_token is signed with the old key"
    );
    assert_eq!(
        jarm_kid(&s, &rp).await,
        old_kid,
        "JARM is signed with the old key (ES256)"
    );
    assert!(
        now() < rotated_at + PREPUBLICATION,
        "the checks before activation took too long to mean anything"
    );

    // after the activation the new keys sign, on the same process
    let wait = rotated_at + PREPUBLICATION + 1 - now();
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    let kid = id_token_kid(&s, &rp).await;
    assert!(new.contains(&kid), "the id_token is signed with a new key");
    assert_eq!(jarm_kid(&s, &rp).await, kid, "JARM too");
    assert!(
        kids(&server_jwks(&s).await).is_superset(&old),
        "old keys still published"
    );
    let listed = keys_list(&s);
    for k in &listed {
        let expected = if new.contains(&k.kid) { "active" } else { "retired" };
        assert_eq!(k.state, expected, "{}", k.kid);
    }
}

/// Issue 17 item 4: the private keys in the database are sealed (no PKCS#8 in the clear) under
/// a key-encryption key generated into the data dir (0600) at the first start; another key
/// fails start with exit 2 and a clear reason; the key is also taken from the environment or a
/// file; sealed keys with no key in sight are refused rather than replaced.
#[tokio::test]
async fn signing_keys_are_encrypted_at_rest() {
    let mut s = Server::start().await;
    let rows = stored_keys(&s.dir).await;
    assert_eq!(rows.len(), 3);
    for (kid, alg, blob) in &rows {
        assert!(
            !parses_as_pkcs8(alg, blob),
            "{kid}: the stored key is PKCS#8 in the clear"
        );
        assert_ne!(blob.first(), Some(&0x30), "{kid}: a DER sequence");
    }
    // the check itself recognises a PKCS#8 key
    let control = SigningKey::generate(Algorithm::Es256).unwrap();
    assert!(parses_as_pkcs8("ES256", control.pkcs8()));

    let kek_file = s.dir.join("keys.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "keys.key mode");
    }
    let kek = std::fs::read_to_string(&kek_file).unwrap().trim().to_owned();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.decode(&kek).unwrap().len(),
        32
    );
    let jwks = kids(&server_jwks(&s).await);
    s.stop().await;

    // a wrong key: exit 2, one line, for serve and for the keys commands
    let wrong = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let env = [("PORTCULLIS_KEYS_ENCRYPTION_KEY", wrong.as_str())];
    let out = run_bin(&s.dir, &["serve"], &env);
    let err = assert_usage_error(&out, "serve with a wrong key-encryption key");
    assert!(
        err.contains("cannot decrypt the signing keys: wrong keys.encryption_key?"),
        "{err}"
    );
    assert!(!err.contains(&wrong), "the key is not repeated: {err}");
    let out = run_bin(&s.dir, &["keys", "list"], &env);
    assert_usage_error(&out, "keys list with a wrong key-encryption key");
    let out = run_bin(
        &s.dir,
        &["serve"],
        &[("PORTCULLIS_KEYS_ENCRYPTION_KEY", "bm90IDMyIGJ5dGVz")],
    );
    let err = assert_usage_error(&out, "a key of the wrong length");
    assert!(err.contains("keys.encryption_key"), "{err}");

    // the same key from the environment, or from a file, with keys.key gone
    let moved = s.dir.parent().unwrap().join("kek.txt");
    std::fs::rename(&kek_file, &moved).unwrap();
    let out = run_bin(&s.dir, &["keys", "list"], &[]);
    let err = assert_usage_error(&out, "sealed keys and no key-encryption key");
    assert!(err.contains("no key-encryption key is configured"), "{err}");
    assert!(!kek_file.exists(), "no new key is generated over sealed keys");
    let out = run_bin(&s.dir, &["keys", "list"], &[("PORTCULLIS_KEYS_ENCRYPTION_KEY", &kek)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let listed: HashSet<String> = stdout_of(&out)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, jwks);
    s.set_env("PORTCULLIS_KEYS_ENCRYPTION_KEY_FILE", moved.to_str().unwrap());
    s.restart().await;
    assert_eq!(kids(&server_jwks(&s).await), jwks, "the same keys");
    assert!(!kek_file.exists());
}

/// Issue 17 item 4: a database from before encryption at rest (plain PKCS#8, no activation
/// column values) is sealed in place at the next start, keeping its keys.
#[tokio::test]
async fn plaintext_keys_are_sealed_at_start() {
    let mut s = Server::start().await;
    s.stop().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.dir.join("portcullis.db").display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM signing_keys").execute(&pool).await.unwrap();
    let created = now() - 100;
    let mut plain = HashSet::new();
    for alg in [Algorithm::Es256, Algorithm::Ps256, Algorithm::EdDsa] {
        let key = SigningKey::generate(alg).unwrap();
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, activates_at, retired_at) VALUES (?, ?, ?, ?, NULL, NULL)",
        )
        .bind(key.kid())
        .bind(alg.as_str())
        .bind(key.pkcs8())
        .bind(created)
        .execute(&pool)
        .await
        .unwrap();
        plain.insert(key.kid().to_owned());
    }
    pool.close().await;
    std::fs::remove_file(s.dir.join("keys.key")).unwrap();

    s.restart().await;
    assert_eq!(kids(&server_jwks(&s).await), plain, "the same keys, published");
    let rp = dcr_client(&s).await;
    assert!(plain.contains(&id_token_kid(&s, &rp).await), "and signing");
    for (kid, alg, blob) in stored_keys(&s.dir).await {
        assert!(!parses_as_pkcs8(&alg, &blob), "{kid} is still in the clear");
    }
    assert!(s.dir.join("keys.key").exists(), "a key-encryption key was generated");
    let listed = keys_list(&s);
    assert!(listed.iter().all(|k| k.state == "active"));
    assert!(
        listed.iter().all(|k| k.activates == k.created),
        "older keys signed from their creation"
    );
}

/// Review round 2, M1: once the keys are sealed, a plaintext key written into the database (by
/// someone with write access, to have it sign) is neither published nor used, at start or at
/// a running server's reload.
#[tokio::test]
async fn a_planted_plaintext_key_is_ignored() {
    let mut s = Server::start().await;
    let before = kids(&server_jwks(&s).await);
    s.stop().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", s.dir.join("portcullis.db").display()))
        .await
        .unwrap();
    let planted = SigningKey::generate(Algorithm::Es256).unwrap();
    // older than the real one, so that it would sign if it were adopted
    sqlx::query(
        "INSERT INTO signing_keys (kid, alg, pkcs8, created_at, activates_at, retired_at) VALUES (?, ?, ?, ?, ?, NULL)",
    )
    .bind(planted.kid())
    .bind("ES256")
    .bind(planted.pkcs8())
    .bind(1_000_i64)
    .bind(1_000_i64)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    s.restart().await;
    let after = kids(&server_jwks(&s).await);
    assert!(!after.contains(planted.kid()), "the planted key is not published");
    assert_eq!(after, before);
    let rp = dcr_client(&s).await;
    assert_ne!(id_token_kid(&s, &rp).await, planted.kid(), "nor used");
    // and it stays in the clear (nobody sealed it into the ring)
    let blob = stored_keys(&s.dir)
        .await
        .into_iter()
        .find(|(kid, _, _)| kid == planted.kid())
        .map(|(_, _, b)| b)
        .unwrap();
    assert!(parses_as_pkcs8("ES256", &blob));
}
