//! The contract every `Store` engine must pass (ARCHITECTURE: one trait, every engine, one
//! suite): single use is atomic (exactly one winner under concurrency), expiry is honoured,
//! revocation reaches every token of a grant. Engines run it with [`crate::store_contract_tests`].

use std::sync::Arc;

use portcullis_jose::Algorithm;

use crate::audit::{AuditRecord, ChainPoint, ChainVerifier, Direction, Evidence, EvidenceKind, Proof, link_all};
use crate::keyring::generate_stored_key;
use crate::model::Session;
use crate::model::{
    AuthorizationCode, AuthorizationRequest, Client, ClientAuthMethod, ClientMetadata, CodeRedemption, Grant,
    InitialAccessToken, Interaction, InteractionStart, PushedRequest, SenderConstraint, TokenKind, TokenRecord, User,
};
use crate::store::{Store, TableSizes};
use crate::types::{CertificateThumbprint, JwkThumbprint, PkceChallenge};

/// Generates one `#[tokio::test]` per contract check, each on a fresh store from `$make`: an
/// expression giving `(guard, Arc<dyn Store>)`, the guard (e.g. a temporary directory) kept
/// alive for the test.
#[macro_export]
macro_rules! store_contract_tests {
    ($make:expr) => {
        $crate::store_contract_tests!(@each $make;
            code_redemption_has_one_winner, code_redemption_outcomes, remember_once_has_one_winner,
            initial_access_token_uses_are_counted, revoking_a_grant_revokes_its_tokens,
            clients_round_trip_and_delete_cascades, secrets_first_writer_wins,
            signing_key_insert_if_missing_has_one_winner, rotation_replaces_the_active_keys_atomically,
            rotation_with_pre_publication_schedules_the_switch, key_material_is_replaced_by_compare_and_swap,
            purge_removes_what_can_no_longer_be_used, purge_goes_on_until_done,
            audit_entries_append_and_read_back, audit_appends_never_fork, audit_purge_leaves_an_anchor,
            initial_access_tokens_are_listed_and_deleted, users_round_trip, changing_a_password_ends_sessions,
            deleting_a_user_takes_what_acts_for_them, interactions_start_per_browser,
            interactions_per_request_are_capped, interaction_completion_has_one_winner,
            interaction_completes_once, interaction_expiry_and_purge);
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (_guard, store) = $make;
                $crate::contract::$name(store).await;
            }
        )*
    };
}

fn grant(id: &str) -> Grant {
    Grant {
        grant_id: id.into(),
        client_id: "c1".into(),
        sub: "u1".into(),
        scope: vec!["openid".into()],
        auth_time: 1000,
        created_at: 1000,
        resources: vec!["https://rs.example/api".into()],
    }
}

fn code(hash: &str, grant_id: &str, expires_at: i64) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: hash.into(),
        grant: grant(grant_id),
        redirect_uri: "https://c.example/cb".into(),
        code_challenge: PkceChallenge::from_trusted("x".repeat(43)),
        dpop_jkt: Some(JwkThumbprint::from_trusted("jkt".into())),
        nonce: None,
        expires_at,
    }
}

fn iat(hash: &str, expires_at: i64, uses_left: Option<i64>) -> InitialAccessToken {
    InitialAccessToken {
        token_hash: hash.into(),
        created_at: Some(expires_at - 3600),
        expires_at,
        uses_left,
    }
}

fn user(username: &str, sub: &str) -> User {
    User {
        username: username.into(),
        sub: sub.into(),
        password_hash: format!("hash of {username}"),
        claims: serde_json::from_value(serde_json::json!({"email": format!("{username}@example.com")}))
            .unwrap_or_default(),
        created_at: Some(1000),
    }
}

/// AS-SP-64: fifty concurrent redemptions of one code, exactly one winner.
pub async fn code_redemption_has_one_winner(s: Arc<dyn Store>) {
    s.insert_code(&code("h1", "g1", 2000)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.redeem_code("h1", "c1", 1500).await.unwrap() },
        ));
    }
    let mut won = 0;
    let mut replayed = 0;
    for t in tasks {
        match t.await.unwrap() {
            CodeRedemption::Redeemed(c) => {
                won += 1;
                assert_eq!(c.dpop_jkt.as_ref().map(JwkThumbprint::as_str), Some("jkt"));
                assert_eq!(c.grant.sub, "u1");
            }
            CodeRedemption::Replayed { grant_id } => {
                replayed += 1;
                assert_eq!(grant_id, "g1");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((won, replayed), (1, 49));
}

pub async fn code_redemption_outcomes(s: Arc<dyn Store>) {
    s.insert_code(&code("h1", "g1", 2000)).await.unwrap();
    assert!(matches!(
        s.redeem_code("h1", "other", 1500).await.unwrap(),
        CodeRedemption::OtherClient
    ));
    assert!(matches!(
        s.redeem_code("h1", "c1", 2000).await.unwrap(),
        CodeRedemption::Expired
    ));
    assert!(matches!(
        s.redeem_code("nope", "c1", 1500).await.unwrap(),
        CodeRedemption::Unknown
    ));
    assert!(matches!(
        s.redeem_code("h1", "c1", 1999).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    // issue 13 item 8: a spent code presented by another client is that client's mistake, not
    // a replay: the owner's grant must not be revoked for it
    assert!(matches!(
        s.redeem_code("h1", "other", 1999).await.unwrap(),
        CodeRedemption::OtherClient
    ));
    assert!(matches!(
        s.redeem_code("h1", "c1", 1999).await.unwrap(),
        CodeRedemption::Replayed { .. }
    ));
}

fn pushed(hash: &str, expires_at: i64) -> PushedRequest {
    PushedRequest {
        request_uri_hash: hash.into(),
        request: AuthorizationRequest {
            client_id: "c1".into(),
            redirect_uri: "https://c.example/cb".into(),
            scope: vec!["openid".into()],
            state: Some("s".repeat(1000)),
            nonce: None,
            code_challenge: PkceChallenge::from_trusted("x".repeat(43)),
            dpop_jkt: None,
            max_age: None,
            prompt: vec![],
            response_mode: Default::default(),
            resources: vec![],
            ui_locales: vec![],
            interaction_id: "i-1".into(),
        },
        expires_at,
        consumed: false,
    }
}

fn interaction(id: &str, request_uri_hash: &str, expires_at: i64) -> Interaction {
    Interaction {
        id: id.into(),
        browser_hash: format!("browser-{id}"),
        request_uri_hash: request_uri_hash.into(),
        request: pushed(request_uri_hash, 0).request,
        pushed_at: 1000,
        expires_at,
        completed: false,
    }
}

/// The cap used by the contract's callers of `start_interaction` (core uses
/// `settings::MAX_LIVE_INTERACTIONS_PER_REQUEST`).
const CAP: u32 = 5;

async fn start(s: &Arc<dyn Store>, i: &Interaction, now: i64) -> InteractionStart {
    s.start_interaction(i, now, CAP).await.unwrap()
}

/// Issue 17 item 7, AS-SP-44: a browser's first visit starts its interaction and leaves the
/// request_uri unconsumed; the same browser has one interaction per request_uri (of many
/// concurrent first visits one stores, the others get that one), another browser gets its own.
/// Nothing starts on an expired, unknown or consumed request_uri.
pub async fn interactions_start_per_browser(s: Arc<dyn Store>) {
    s.insert_pushed_request(&pushed("r1", 2000)).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let i = Interaction {
                browser_hash: "browser-a".into(),
                ..interaction(&format!("a{n}"), "r1", 5000)
            };
            s.start_interaction(&i, 1500, CAP).await.unwrap()
        }));
    }
    let mut started = 0;
    let mut existing = std::collections::HashSet::new();
    for t in tasks {
        match t.await.unwrap() {
            InteractionStart::Started => started += 1,
            InteractionStart::Existing(i) => {
                existing.insert(i.id);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(started, 1);
    assert!(existing.len() <= 1, "{existing:?}");
    assert_eq!(s.table_sizes().await.unwrap().interactions, 1);
    assert!(
        !s.get_pushed_request("r1").await.unwrap().unwrap().consumed,
        "not consumed"
    );
    let a = s.get_browser_interaction("r1", "browser-a").await.unwrap().unwrap();
    assert!(existing.iter().all(|id| *id == a.id));
    assert_eq!(s.get_interaction(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(a.request.state.as_ref().map(String::len), Some(1000));
    assert_eq!((a.pushed_at, a.expires_at), (1000, 5000));
    assert!(!a.completed);
    // another browser starts its own
    let b = interaction("b", "r1", 5000);
    assert_eq!(start(&s, &b, 1600).await, InteractionStart::Started);
    assert_eq!(
        s.get_browser_interaction("r1", "browser-b").await.unwrap(),
        Some(b.clone())
    );
    assert_eq!(s.table_sizes().await.unwrap().interactions, 2);
    assert!(s.get_interaction("nope").await.unwrap().is_none());
    assert!(s.get_browser_interaction("r1", "browser-nope").await.unwrap().is_none());
    assert!(s.get_browser_interaction("nope", "browser-b").await.unwrap().is_none());
    // an expired or unknown request_uri starts nothing
    s.insert_pushed_request(&pushed("r2", 2000)).await.unwrap();
    assert_eq!(
        start(&s, &interaction("x", "r2", 5000), 2000).await,
        InteractionStart::Unavailable
    );
    assert_eq!(
        start(&s, &interaction("y", "r3", 5000), 1500).await,
        InteractionStart::Unavailable
    );
    assert!(s.get_interaction("x").await.unwrap().is_none());
    assert!(!s.get_pushed_request("r2").await.unwrap().unwrap().consumed);
    // nor a consumed one
    assert!(s.complete_interaction("b", 1700).await.unwrap());
    assert_eq!(
        start(&s, &interaction("c", "r1", 5000), 1700).await,
        InteractionStart::Unavailable
    );
    assert_eq!(s.table_sizes().await.unwrap().interactions, 2);
    // removing the client takes its interactions
    assert!(!s.delete_client("c1").await.unwrap());
    assert_eq!(s.table_sizes().await.unwrap().interactions, 0);
}

/// Issue 17 item 7: one request_uri has at most `max_live` live interactions (a leaked URL
/// cannot fill the database), however many browsers race; a browser that has one still gets
/// it; an expired one leaves room.
pub async fn interactions_per_request_are_capped(s: Arc<dyn Store>) {
    s.insert_pushed_request(&pushed("r1", 2000)).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..20 {
        let s = s.clone();
        // the first expires at 1600, the others later
        let expires_at = if n == 0 { 1600 } else { 5000 };
        tasks.push(tokio::spawn(async move {
            s.start_interaction(&interaction(&format!("i{n}"), "r1", expires_at), 1500, CAP)
                .await
                .unwrap()
        }));
    }
    let (mut started, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            InteractionStart::Started => started += 1,
            InteractionStart::TooMany => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((started, refused), (5, 15));
    assert_eq!(s.table_sizes().await.unwrap().interactions, 5);
    // a browser with an interaction continues it at the cap
    let mut holder = None;
    for n in 0..20 {
        holder = holder.or(s.get_interaction(&format!("i{n}")).await.unwrap());
    }
    let holder = holder.unwrap();
    let again = Interaction {
        id: "again".into(),
        ..holder.clone()
    };
    assert_eq!(
        start(&s, &again, 1500).await,
        InteractionStart::Existing(Box::new(holder))
    );
    assert_eq!(
        start(&s, &interaction("late", "r1", 5000), 1500).await,
        InteractionStart::TooMany
    );
    assert!(s.get_interaction("late").await.unwrap().is_none());
    // once a live one has expired there is room for one more (if i0 was among the five)
    if s.get_interaction("i0").await.unwrap().is_some() {
        assert_eq!(
            start(&s, &interaction("late", "r1", 5000), 1600).await,
            InteractionStart::Started
        );
        assert_eq!(
            start(&s, &interaction("later", "r1", 5000), 1600).await,
            InteractionStart::TooMany
        );
    }
    assert!(!s.get_pushed_request("r1").await.unwrap().unwrap().consumed);
}

/// Issue 17 item 7, AS-SP-43/44: of several browsers' interactions on one request_uri racing
/// to complete, exactly one completes, and consumes the request_uri in the same step; the
/// others stay uncompleted and can no longer complete.
pub async fn interaction_completion_has_one_winner(s: Arc<dyn Store>) {
    s.insert_pushed_request(&pushed("r1", 2000)).await.unwrap();
    for n in 0..5 {
        assert_eq!(
            start(&s, &interaction(&format!("i{n}"), "r1", 5000), 1500).await,
            InteractionStart::Started
        );
    }
    let mut tasks = Vec::new();
    for n in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("i{}", n % 5);
            (id.clone(), s.complete_interaction(&id, 1800).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (id, won) = t.await.unwrap();
        if won {
            winners.push(id);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert!(s.get_pushed_request("r1").await.unwrap().unwrap().consumed);
    for n in 0..5 {
        let id = format!("i{n}");
        let i = s.get_interaction(&id).await.unwrap().unwrap();
        assert_eq!(i.completed, id == winners[0], "{id}");
        assert!(!s.complete_interaction(&id, 1800).await.unwrap(), "{id}");
    }
}

/// Issue 17 item 7: an interaction gives one authorization response, however many consent
/// POSTs race for it.
pub async fn interaction_completes_once(s: Arc<dyn Store>) {
    s.insert_pushed_request(&pushed("r1", 2000)).await.unwrap();
    assert_eq!(
        start(&s, &interaction("i1", "r1", 5000), 1500).await,
        InteractionStart::Started
    );
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.complete_interaction("i1", 4000).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(s.get_interaction("i1").await.unwrap().unwrap().completed);
    assert!(s.get_pushed_request("r1").await.unwrap().unwrap().consumed);
    assert!(!s.complete_interaction("i1", 4000).await.unwrap());
    assert!(!s.complete_interaction("nope", 4000).await.unwrap());
}

/// Issue 17 item 7: an interaction outlives its request_uri (it completes, and consumes it,
/// after the request_uri's expiry), but not its own expiry; the purge removes it an hour after
/// that (a late form still gets a precise page until then).
pub async fn interaction_expiry_and_purge(s: Arc<dyn Store>) {
    s.insert_pushed_request(&pushed("r1", 2000)).await.unwrap();
    s.insert_pushed_request(&pushed("r2", 2000)).await.unwrap();
    assert_eq!(
        start(&s, &interaction("i1", "r1", 5000), 1500).await,
        InteractionStart::Started
    );
    assert_eq!(
        start(&s, &interaction("i2", "r2", 9000), 1500).await,
        InteractionStart::Started
    );
    assert!(!s.complete_interaction("i1", 5000).await.unwrap(), "expired");
    assert!(!s.get_interaction("i1").await.unwrap().unwrap().completed);
    assert!(
        !s.get_pushed_request("r1").await.unwrap().unwrap().consumed,
        "nothing consumed"
    );
    // long after its request_uri expired (2000), the live one completes and consumes it
    assert!(s.complete_interaction("i2", 4000).await.unwrap());
    assert!(s.get_pushed_request("r2").await.unwrap().unwrap().consumed);
    s.purge_expired(8599).await.unwrap();
    assert!(s.get_interaction("i1").await.unwrap().is_some(), "within the hour");
    s.purge_expired(8600).await.unwrap();
    assert!(s.get_interaction("i1").await.unwrap().is_none());
    assert!(s.get_browser_interaction("r1", "browser-i1").await.unwrap().is_none());
    assert_eq!(s.table_sizes().await.unwrap().interactions, 1);
    assert!(s.get_interaction("i2").await.unwrap().unwrap().completed);
}

/// RFC 9449 §11.1: a jti is remembered once; an expired record may be reused.
pub async fn remember_once_has_one_winner(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        tasks.push(tokio::spawn(
            async move { s.remember_once("k", 2000, 1000).await.unwrap() },
        ));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1);
    assert!(!s.remember_once("k", 3000, 1999).await.unwrap());
    assert!(
        s.remember_once("k", 3000, 2000).await.unwrap(),
        "an expired record is free again"
    );
}

pub async fn initial_access_token_uses_are_counted(s: Arc<dyn Store>) {
    s.insert_initial_access_token(&iat("t1", 2000, Some(2))).await.unwrap();
    assert!(s.use_initial_access_token("t1", 1000).await.unwrap());
    assert!(s.use_initial_access_token("t1", 1000).await.unwrap());
    assert!(!s.use_initial_access_token("t1", 1000).await.unwrap());
    s.insert_initial_access_token(&iat("t2", 2000, None)).await.unwrap();
    for _ in 0..5 {
        assert!(s.use_initial_access_token("t2", 1000).await.unwrap());
    }
    assert!(!s.use_initial_access_token("t2", 2000).await.unwrap(), "expired");
}

pub async fn revoking_a_grant_revokes_its_tokens(s: Arc<dyn Store>) {
    s.insert_code(&code("h1", "g1", 2000)).await.unwrap();
    let token = |h: &str, kind| TokenRecord {
        token_hash: h.into(),
        kind,
        grant_id: "g1".into(),
        constraint: Some(SenderConstraint::Dpop {
            jkt: JwkThumbprint::from_trusted("j".into()),
        }),
        scope: vec!["openid".into()],
        audience: vec!["https://rs.example/api".into()],
        issued_at: 1000,
        expires_at: 2000,
    };
    s.insert_tokens(&[token("a", TokenKind::Access), token("r", TokenKind::Refresh)])
        .await
        .unwrap();
    let (t, g) = s.get_token("a", TokenKind::Access, 1500).await.unwrap().unwrap();
    assert_eq!(
        t.constraint,
        Some(SenderConstraint::Dpop {
            jkt: JwkThumbprint::from_trusted("j".into())
        })
    );
    assert_eq!(g.sub, "u1");
    // RFC 8707: the token's audience and the grant's resources come back
    assert_eq!(t.audience, vec!["https://rs.example/api".to_owned()]);
    assert_eq!(g.resources, vec!["https://rs.example/api".to_owned()]);
    // RFC 8705 §3: a certificate-bound token keeps its thumbprint
    let mtls = SenderConstraint::Mtls {
        x5t_s256: CertificateThumbprint::from_trusted("x".into()),
    };
    s.insert_tokens(&[TokenRecord {
        constraint: Some(mtls.clone()),
        ..token("m", TokenKind::Access)
    }])
    .await
    .unwrap();
    let (t, _) = s.get_token("m", TokenKind::Access, 1500).await.unwrap().unwrap();
    assert_eq!(t.constraint, Some(mtls));
    // RFC 7009: one token deleted alone, the rest of the grant kept
    assert!(s.delete_token("m").await.unwrap());
    assert!(!s.delete_token("m").await.unwrap(), "already gone");
    assert!(s.get_token("m", TokenKind::Access, 1500).await.unwrap().is_none());
    assert!(s.get_token("a", TokenKind::Access, 1500).await.unwrap().is_some());
    assert!(
        s.get_token("a", TokenKind::Refresh, 1500).await.unwrap().is_none(),
        "kinds do not mix"
    );
    assert!(
        s.get_token("a", TokenKind::Access, 2000).await.unwrap().is_none(),
        "expired"
    );
    s.revoke_grant("g1").await.unwrap();
    assert!(s.get_token("a", TokenKind::Access, 1500).await.unwrap().is_none());
    assert!(s.get_token("r", TokenKind::Refresh, 1500).await.unwrap().is_none());
}

pub async fn clients_round_trip_and_delete_cascades(s: Arc<dyn Store>) {
    let client = Client {
        client_id: "c1".into(),
        issued_at: 1000,
        metadata: ClientMetadata {
            redirect_uris: vec!["https://c.example/cb".into()],
            token_endpoint_auth_method: ClientAuthMethod::PrivateKeyJwt,
            grant_types: vec!["authorization_code".into()],
            response_types: vec!["code".into()],
            client_name: Some("C".into()),
            scope: None,
            jwks: Some(serde_json::json!({"keys": []})),
            jwks_uri: None,
            token_endpoint_auth_signing_alg: None,
            id_token_signed_response_alg: Algorithm::Es256,
            dpop_bound_access_tokens: true,
            tls_client_certificate_bound_access_tokens: false,
            extra: Default::default(),
        },
    };
    s.insert_client(&client, Some(("rat", 2000))).await.unwrap();
    assert_eq!(s.get_client("c1").await.unwrap(), Some(client.clone()));
    assert!(
        s.get_client_by_registration_token("c1", "wrong", 1000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_client_by_registration_token("c1", "rat", 1999)
            .await
            .unwrap()
            .is_some()
    );
    // issue 13 item 14: registration access tokens expire, and an update rotates the token
    // (compare-and-swap on the old one: of two updates with one token, one wins)
    assert!(
        s.get_client_by_registration_token("c1", "rat", 2000)
            .await
            .unwrap()
            .is_none()
    );
    let mut renamed = client.clone();
    renamed.metadata.client_name = Some("renamed".into());
    assert!(
        s.update_client_registration(&renamed, "rat", ("rat2", 5000))
            .await
            .unwrap()
    );
    assert!(
        !s.update_client_registration(&client, "rat", ("rat3", 5000))
            .await
            .unwrap()
    );
    assert!(
        s.get_client_by_registration_token("c1", "rat", 1000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.get_client_by_registration_token("c1", "rat2", 4999).await.unwrap(),
        Some(renamed)
    );
    s.insert_code(&code("h1", "g1", 2000)).await.unwrap();
    assert!(s.delete_client("c1").await.unwrap());
    assert!(s.get_client("c1").await.unwrap().is_none());
    assert!(matches!(
        s.redeem_code("h1", "c1", 1500).await.unwrap(),
        CodeRedemption::Unknown
    ));
}

pub async fn secrets_first_writer_wins(s: Arc<dyn Store>) {
    let a = s.get_or_create_secret("n", b"first").await.unwrap();
    let b = s.get_or_create_secret("n", b"second").await.unwrap();
    assert_eq!(a, b"first");
    assert_eq!(b, b"first");
    assert_eq!(s.get_secret("n").await.unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(s.get_secret("m").await.unwrap(), None);
    s.delete_secret("n").await.unwrap();
    assert_eq!(s.get_secret("n").await.unwrap(), None);
}

/// Issue 13 item 17: twenty servers racing to create the first ES256 key: exactly one stores
/// its key; the others see it and store nothing; another algorithm is independent, and a
/// retired key does not count as present.
pub async fn signing_key_insert_if_missing_has_one_winner(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        let key = generate_stored_key(Algorithm::Es256, 1000).unwrap();
        tasks.push(tokio::spawn(async move {
            (s.insert_signing_key_if_missing(&key).await.unwrap(), key.kid)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (won, kid) = t.await.unwrap();
        if won {
            winners.push(kid);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner");
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid, winners[0], "the winner's key is the stored one");
    let ed = generate_stored_key(Algorithm::EdDsa, 1000).unwrap();
    assert!(s.insert_signing_key_if_missing(&ed).await.unwrap(), "another algorithm");
    s.retire_signing_keys(2000).await.unwrap();
    let next = generate_stored_key(Algorithm::Es256, 2000).unwrap();
    assert!(
        s.insert_signing_key_if_missing(&next).await.unwrap(),
        "retired keys are not active"
    );
    let again = generate_stored_key(Algorithm::Es256, 2001).unwrap();
    assert!(!s.insert_signing_key_if_missing(&again).await.unwrap());
}

/// Issue 13 item 17: a rotation retires the old keys and stores the new ones in one step, so
/// that a start racing it never finds an algorithm without an active key (and adds none).
pub async fn rotation_replaces_the_active_keys_atomically(s: Arc<dyn Store>) {
    let old = generate_stored_key(Algorithm::Es256, 1000).unwrap();
    assert!(s.insert_signing_key_if_missing(&old).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..10 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            if i == 5 {
                let new = generate_stored_key(Algorithm::Es256, 2000).unwrap();
                s.rotate_signing_keys(&[new], 2000).await.unwrap();
            } else {
                let key = generate_stored_key(Algorithm::Es256, 2000).unwrap();
                assert!(
                    !s.insert_signing_key_if_missing(&key).await.unwrap(),
                    "never found missing"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let active: Vec<_> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
    assert_eq!(active.len(), 1, "one active key");
    assert_ne!(active[0].kid, old.kid);
    let retired = keys.iter().find(|k| k.kid == old.kid).unwrap();
    assert_eq!(retired.retired_at, Some(2000));
}

/// Issue 17 item 4: a rotation with pre-publication stores the next keys with their
/// activation and retires the current ones at that moment (not before); a second, emergency
/// rotation before it cuts both short; keys read back with their activation.
pub async fn rotation_with_pre_publication_schedules_the_switch(s: Arc<dyn Store>) {
    let old = generate_stored_key(Algorithm::Es256, 1000).unwrap();
    assert!(s.insert_signing_key_if_missing(&old).await.unwrap());
    let mut next = generate_stored_key(Algorithm::Es256, 2000).unwrap();
    next.activates_at = 5600;
    s.rotate_signing_keys(std::slice::from_ref(&next), 5600).await.unwrap();
    let keys = s.list_signing_keys().await.unwrap();
    let get = |keys: &[crate::model::StoredKey], kid: &str| keys.iter().find(|k| k.kid == kid).cloned().unwrap();
    assert_eq!(
        get(&keys, &old.kid).retired_at,
        Some(5600),
        "the old key signs until the switch"
    );
    assert_eq!(get(&keys, &old.kid).activates_at, 1000);
    let n = get(&keys, &next.kid);
    assert_eq!((n.activates_at, n.retired_at, n.created_at), (5600, None, 2000));
    // a start meanwhile finds a key for the algorithm and adds none
    let racer = generate_stored_key(Algorithm::Es256, 2001).unwrap();
    assert!(!s.insert_signing_key_if_missing(&racer).await.unwrap());
    // emergency: a rotation at 3000 with no pre-publication retires both at 3000
    let now = generate_stored_key(Algorithm::Es256, 3000).unwrap();
    s.rotate_signing_keys(std::slice::from_ref(&now), 3000).await.unwrap();
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(get(&keys, &old.kid).retired_at, Some(3000));
    assert_eq!(
        get(&keys, &next.kid).retired_at,
        Some(3000),
        "the scheduled key never signs"
    );
    assert_eq!(get(&keys, &now.kid).retired_at, None);
    // keys retired before the switch are not touched by a later rotation's retirement
    let last = generate_stored_key(Algorithm::Es256, 4000).unwrap();
    s.rotate_signing_keys(std::slice::from_ref(&last), 4000).await.unwrap();
    let keys = s.list_signing_keys().await.unwrap();
    assert_eq!(get(&keys, &old.kid).retired_at, Some(3000));
    assert_eq!(get(&keys, &now.kid).retired_at, Some(4000));
}

/// Issue 17 item 4: sealing a stored plaintext key is a compare and swap: of servers racing to
/// seal one key, exactly one writes, and a stale expectation writes nothing.
pub async fn key_material_is_replaced_by_compare_and_swap(s: Arc<dyn Store>) {
    let key = generate_stored_key(Algorithm::EdDsa, 1000).unwrap();
    s.insert_signing_key(&key).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let s = s.clone();
        let (kid, plain) = (key.kid.clone(), key.private_key.clone());
        tasks.push(tokio::spawn(async move {
            s.replace_signing_key_material(&kid, &plain, &[b'P', b'C', b'K', b'1', i])
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1, "exactly one writer");
    let stored = s.list_signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].private_key.starts_with(b"PCK1"));
    assert!(
        !s.replace_signing_key_material(&key.kid, &key.private_key, b"x")
            .await
            .unwrap(),
        "a stale expectation"
    );
    assert!(!s.replace_signing_key_material("nope", b"", b"x").await.unwrap());
}

fn token(hash: &str, kind: TokenKind, grant_id: &str, expires_at: i64) -> TokenRecord {
    TokenRecord {
        token_hash: hash.into(),
        kind,
        grant_id: grant_id.into(),
        constraint: None,
        scope: vec!["openid".into()],
        audience: vec![],
        issued_at: 1000,
        expires_at,
    }
}

fn session(expires_at: i64) -> Session {
    Session {
        username: "alice".into(),
        auth_time: 1000,
        expires_at,
        login_request: Some("rq".into()),
    }
}

/// Issue 13 item 5: after expiry and a purge, every kind of row that can no longer be used is
/// gone (grants without codes and tokens, revoked ones included; used-up initial access
/// tokens) and every live one is kept. Grants were never purged before.
pub async fn purge_removes_what_can_no_longer_be_used(s: Arc<dyn Store>) {
    let now = 10_000;
    // g1: its code expired over an hour ago, no tokens: gone with its code
    s.insert_code(&code("c1", "g1", 5000)).await.unwrap();
    // g2: code gone, refresh token live (the access token expired): kept
    s.insert_code(&code("c2", "g2", 5000)).await.unwrap();
    s.insert_tokens(&[
        token("a2", TokenKind::Access, "g2", 9000),
        token("r2", TokenKind::Refresh, "g2", 20_000),
    ])
    .await
    .unwrap();
    // g3: its code expired under an hour ago: kept, so that a replay is still recognised
    s.insert_code(&code("c3", "g3", 9000)).await.unwrap();
    // g4: revoked, old code: gone
    s.insert_code(&code("c4", "g4", 5000)).await.unwrap();
    s.insert_tokens(&[token("r4", TokenKind::Refresh, "g4", 20_000)])
        .await
        .unwrap();
    s.revoke_grant("g4").await.unwrap();
    // g5: a live code
    s.insert_code(&code("c5", "g5", now + 60)).await.unwrap();

    s.insert_pushed_request(&pushed("p1", 5000)).await.unwrap();
    s.insert_pushed_request(&pushed("p2", 9000)).await.unwrap();
    s.insert_pushed_request(&pushed("p3", now + 90)).await.unwrap();
    s.insert_session("s1", &session(now - 1)).await.unwrap();
    s.insert_session("s2", &session(now + 1)).await.unwrap();
    assert!(s.remember_once("k1", now, 1000).await.unwrap());
    assert!(s.remember_once("k2", now + 10, 1000).await.unwrap());
    s.insert_initial_access_token(&iat("i1", 9000, None)).await.unwrap();
    s.insert_initial_access_token(&iat("i2", 20_000, Some(1)))
        .await
        .unwrap();
    assert!(s.use_initial_access_token("i2", 1000).await.unwrap());
    s.insert_initial_access_token(&iat("i3", 20_000, None)).await.unwrap();
    s.insert_initial_access_token(&iat("i4", 20_000, Some(2)))
        .await
        .unwrap();
    assert!(s.use_initial_access_token("i4", 1000).await.unwrap());

    s.purge_expired(now).await.unwrap();
    let sizes = s.table_sizes().await.unwrap();
    assert_eq!(
        sizes,
        TableSizes {
            grants: 3,                // g2 g3 g5
            codes: 2,                 // c3 c5
            tokens: 1,                // r2
            pushed_requests: 2,       // p2 p3
            sessions: 1,              // s2
            replay: 1,                // k2
            initial_access_tokens: 2, // i3 i4
            ..TableSizes::default()
        }
    );
    // and what is kept still works
    assert!(s.get_token("r2", TokenKind::Refresh, now).await.unwrap().is_some());
    assert!(matches!(
        s.redeem_code("c3", "c1", now).await.unwrap(),
        CodeRedemption::Expired
    ));
    assert!(matches!(
        s.redeem_code("c5", "c1", now).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    assert!(s.get_session("s2", now).await.unwrap().is_some());
    assert!(s.get_pushed_request("p2").await.unwrap().is_some());
    assert!(s.use_initial_access_token("i4", now).await.unwrap());
    assert!(!s.remember_once("k2", now + 10, now).await.unwrap());
}

/// Issue 13 item 5: the purge deletes in bounded batches and goes on until nothing expired is
/// left (here more rows than several batches).
pub async fn purge_goes_on_until_done(s: Arc<dyn Store>) {
    for i in 0..1_234 {
        assert!(s.remember_once(&format!("old{i}"), 1500, 1000).await.unwrap());
    }
    assert!(s.remember_once("live", 3000, 1000).await.unwrap());
    s.purge_expired(2000).await.unwrap();
    assert_eq!(s.table_sizes().await.unwrap().replay, 1);
}

/// Evidence signed by `key` for interaction `interaction`, at `at`.
fn evidence(key: &portcullis_jose::SigningKey, interaction: &str, at: i64) -> Evidence {
    let jwt = key
        .sign_jwt(key.algorithm(), None, &serde_json::json!({ "at": at }))
        .unwrap();
    Evidence::jws(
        EvidenceKind::RequestObject,
        Direction::Received,
        interaction,
        "c1",
        at,
        key.public_jwk(),
        &jwt,
    )
}

async fn verify_all(s: &dyn Store) -> u64 {
    let mut v = ChainVerifier::new(s.audit_anchor().await.unwrap());
    let mut after = v.head().seq;
    loop {
        let page = s.audit_range(after, 2).await.unwrap();
        if page.is_empty() {
            return v.checked();
        }
        for r in &page {
            v.check(r).unwrap_or_else(|e| panic!("{e}"));
            after = r.seq;
        }
    }
}

/// Issue 16 item 5: entries go in as chained and come back byte for byte, by interaction
/// and by range; HTTP signatures with and without a body included.
pub async fn audit_entries_append_and_read_back(s: Arc<dyn Store>) {
    let key = portcullis_jose::SigningKey::generate(Algorithm::Es256).unwrap();
    assert_eq!(s.audit_head().await.unwrap(), ChainPoint::GENESIS);
    assert_eq!(s.audit_anchor().await.unwrap(), ChainPoint::GENESIS);
    let mut http = evidence(&key, "i-2", 1002);
    http.kind = EvidenceKind::ResourceResponse;
    http.direction = Direction::Sent;
    http.proof = Proof::HttpSignature {
        base: "\"@status\": 200".into(),
        signature: vec![0, 1, 2, 255],
        body: Some(vec![]),
    };
    let mut no_body = http.clone();
    no_body.proof = Proof::HttpSignature {
        base: "\"@method\": GET".into(),
        signature: vec![9; 64],
        body: None,
    };
    let (records, head) = link_all(
        ChainPoint::GENESIS,
        vec![evidence(&key, "i-1", 1000), evidence(&key, "i-2", 1001), http, no_body],
    );
    assert!(s.append_audit(&records[..1]).await.unwrap());
    assert!(s.append_audit(&records[1..]).await.unwrap());
    assert!(s.append_audit(&[]).await.unwrap());
    assert_eq!(s.audit_head().await.unwrap(), head);
    assert_eq!(s.audit_range(0, 100).await.unwrap(), records);
    assert_eq!(s.audit_range(1, 2).await.unwrap(), records[1..3].to_vec());
    assert!(s.audit_range(4, 10).await.unwrap().is_empty());
    let two = s.audit_by_interaction("i-2").await.unwrap();
    assert_eq!(two.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
    assert!(s.audit_by_interaction("nope").await.unwrap().is_empty());
    assert_eq!(s.table_sizes().await.unwrap().audit, 4);
}

/// Issue 16 item 5: an append that does not follow the stored head (a stale writer, another
/// node) writes nothing, and the chain stays one line; fifty concurrent writers linking
/// from the head they read end up with one unbroken chain.
pub async fn audit_appends_never_fork(s: Arc<dyn Store>) {
    let key = portcullis_jose::SigningKey::generate(Algorithm::Es256).unwrap();
    let (first, head) = link_all(ChainPoint::GENESIS, vec![evidence(&key, "i", 1)]);
    assert!(s.append_audit(&first).await.unwrap());
    // a second writer that read the head before the first wrote
    let (stale, _) = link_all(
        ChainPoint::GENESIS,
        vec![evidence(&key, "j", 2), evidence(&key, "j", 3)],
    );
    assert!(!s.append_audit(&stale).await.unwrap());
    // right seq, wrong predecessor
    let forged = ChainPoint {
        seq: 1,
        ..ChainPoint::GENESIS
    };
    let (fork, _) = link_all(forged, vec![evidence(&key, "j", 2)]);
    assert!(!s.append_audit(&fork).await.unwrap());
    assert_eq!(s.audit_head().await.unwrap(), head);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let s = s.clone();
        let e: AuditRecord = AuditRecord::link(ChainPoint::GENESIS, evidence(&key, "k", 10 + i));
        tasks.push(tokio::spawn(async move {
            loop {
                let head = s.audit_head().await.unwrap();
                let r = AuditRecord::link(head, e.evidence.clone());
                if s.append_audit(&[r]).await.unwrap() {
                    return;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(verify_all(s.as_ref()).await, 51);
}

/// Issue 16 item 5: retention removes the oldest entries only up to the first one to keep,
/// and the last removed one becomes the anchor from which the rest still verifies.
pub async fn audit_purge_leaves_an_anchor(s: Arc<dyn Store>) {
    let key = portcullis_jose::SigningKey::generate(Algorithm::Es256).unwrap();
    // `at` is not monotonic in seq (entries queued by several handlers): 4 is older than 3
    let ats = [100, 200, 400, 300, 500];
    let (records, head) = link_all(ChainPoint::GENESIS, ats.iter().map(|at| evidence(&key, "i", *at)));
    assert!(s.append_audit(&records).await.unwrap());
    assert_eq!(s.purge_audit_before(50).await.unwrap(), 0);
    assert_eq!(s.audit_anchor().await.unwrap(), ChainPoint::GENESIS);
    // entry 3 (at 400) is kept, so entry 4 (at 300) stays too: the rest is one chain
    assert_eq!(s.purge_audit_before(350).await.unwrap(), 2);
    assert_eq!(s.audit_anchor().await.unwrap(), records[1].point());
    assert_eq!(s.audit_head().await.unwrap(), head);
    assert_eq!(verify_all(s.as_ref()).await, 3);
    // everything: the head is the anchor, and appending goes on from it
    assert_eq!(s.purge_audit_before(1000).await.unwrap(), 3);
    assert_eq!(s.audit_anchor().await.unwrap(), head);
    assert_eq!(s.audit_head().await.unwrap(), head);
    let (next, _) = link_all(head, vec![evidence(&key, "i", 2000)]);
    assert!(s.append_audit(&next).await.unwrap());
    assert_eq!(verify_all(s.as_ref()).await, 1);
    assert_eq!(s.table_sizes().await.unwrap().audit, 1);
}

/// Issue 17: `registration-token list | revoke`: every token with its creation, expiry and uses
/// left; a deleted one allows no further registration.
pub async fn initial_access_tokens_are_listed_and_deleted(s: Arc<dyn Store>) {
    assert!(s.list_initial_access_tokens().await.unwrap().is_empty());
    s.insert_initial_access_token(&iat("t2", 5000, None)).await.unwrap();
    s.insert_initial_access_token(&iat("t1", 2000, Some(2))).await.unwrap();
    s.insert_initial_access_token(&InitialAccessToken {
        created_at: None,
        ..iat("t0", 3000, Some(1))
    })
    .await
    .unwrap();
    assert!(s.use_initial_access_token("t1", 1000).await.unwrap());
    let listed = s.list_initial_access_tokens().await.unwrap();
    let hashes: Vec<&str> = listed.iter().map(|t| t.token_hash.as_str()).collect();
    assert_eq!(hashes, ["t0", "t1", "t2"], "oldest first, unknown creation first");
    assert_eq!(
        listed[0],
        InitialAccessToken {
            created_at: None,
            ..iat("t0", 3000, Some(1))
        }
    );
    assert_eq!(listed[1], iat("t1", 2000, Some(1)), "one use spent");
    assert_eq!(listed[2], iat("t2", 5000, None));
    assert!(s.delete_initial_access_token("t1").await.unwrap());
    assert!(!s.delete_initial_access_token("t1").await.unwrap(), "already gone");
    assert!(!s.initial_access_token_valid("t1", 1000).await.unwrap());
    assert!(!s.use_initial_access_token("t1", 1000).await.unwrap());
    assert!(
        s.use_initial_access_token("t2", 1000).await.unwrap(),
        "the others are kept"
    );
    assert_eq!(s.list_initial_access_tokens().await.unwrap().len(), 2);
}

/// Issue 17: `user list | show`.
pub async fn users_round_trip(s: Arc<dyn Store>) {
    assert!(s.list_users().await.unwrap().is_empty());
    s.insert_user(&user("bob", "sub-b")).await.unwrap();
    s.insert_user(&User {
        created_at: None,
        ..user("alice", "sub-a")
    })
    .await
    .unwrap();
    let users = s.list_users().await.unwrap();
    let names: Vec<&str> = users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob"], "by username");
    assert_eq!(users[0].created_at, None);
    assert_eq!(users[1].created_at, Some(1000));
    assert_eq!(users[1].sub, "sub-b");
    assert_eq!(users[1].claims["email"], "bob@example.com");
    let by_sub = s.get_user_by_sub("sub-b").await.unwrap().unwrap();
    assert_eq!((by_sub.username.as_str(), by_sub.created_at), ("bob", Some(1000)));
}

fn user_session(username: &str) -> Session {
    Session {
        username: username.into(),
        auth_time: 1000,
        expires_at: 9000,
        login_request: None,
    }
}

/// Issue 17: `user passwd` replaces the hash and ends the user's sessions, no one else's.
pub async fn changing_a_password_ends_sessions(s: Arc<dyn Store>) {
    s.insert_user(&user("alice", "sub-a")).await.unwrap();
    s.insert_user(&user("bob", "sub-b")).await.unwrap();
    s.insert_session("sa1", &user_session("alice")).await.unwrap();
    s.insert_session("sa2", &user_session("alice")).await.unwrap();
    s.insert_session("sb", &user_session("bob")).await.unwrap();
    assert!(s.set_user_password("alice", "new hash").await.unwrap());
    assert_eq!(s.get_user("alice").await.unwrap().unwrap().password_hash, "new hash");
    assert_eq!(s.get_user("bob").await.unwrap().unwrap().password_hash, "hash of bob");
    assert!(s.get_session("sa1", 1500).await.unwrap().is_none());
    assert!(s.get_session("sa2", 1500).await.unwrap().is_none());
    assert!(
        s.get_session("sb", 1500).await.unwrap().is_some(),
        "another user's session"
    );
    assert!(!s.set_user_password("nobody", "x").await.unwrap());
    assert!(s.get_user("nobody").await.unwrap().is_none(), "no user made");
}

/// Issue 17: `user remove` takes the user's sessions, grants, codes, access and refresh tokens
/// with it, and nothing of anyone else's.
pub async fn deleting_a_user_takes_what_acts_for_them(s: Arc<dyn Store>) {
    s.insert_user(&user("alice", "u1")).await.unwrap();
    s.insert_user(&user("bob", "u2")).await.unwrap();
    s.insert_session("sa", &user_session("alice")).await.unwrap();
    s.insert_session("sb", &user_session("bob")).await.unwrap();
    let token = |h: &str, kind, grant: &str| TokenRecord {
        token_hash: h.into(),
        kind,
        grant_id: grant.into(),
        constraint: None,
        scope: vec!["openid".into()],
        audience: vec![],
        issued_at: 1000,
        expires_at: 2000,
    };
    // alice (u1): a redeemed grant with tokens and a pending code; bob (u2): the same
    s.insert_code(&code("ca1", "ga1", 2000)).await.unwrap();
    s.insert_code(&code("ca2", "ga2", 2000)).await.unwrap();
    let bobs = |hash: &str, id: &str| AuthorizationCode {
        grant: Grant {
            sub: "u2".into(),
            ..grant(id)
        },
        ..code(hash, id, 2000)
    };
    s.insert_code(&bobs("cb1", "gb1")).await.unwrap();
    s.insert_code(&bobs("cb2", "gb2")).await.unwrap();
    s.insert_tokens(&[
        token("aa", TokenKind::Access, "ga1"),
        token("ar", TokenKind::Refresh, "ga1"),
    ])
    .await
    .unwrap();
    s.insert_tokens(&[
        token("ba", TokenKind::Access, "gb1"),
        token("br", TokenKind::Refresh, "gb1"),
    ])
    .await
    .unwrap();

    assert!(s.delete_user("alice").await.unwrap());
    assert!(!s.delete_user("alice").await.unwrap(), "already gone");
    assert!(s.get_user("alice").await.unwrap().is_none());
    assert!(s.get_user_by_sub("u1").await.unwrap().is_none());
    assert!(s.get_session("sa", 1500).await.unwrap().is_none());
    assert!(s.get_token("aa", TokenKind::Access, 1500).await.unwrap().is_none());
    assert!(s.get_token("ar", TokenKind::Refresh, 1500).await.unwrap().is_none());
    assert!(
        !matches!(
            s.redeem_code("ca2", "c1", 1500).await.unwrap(),
            CodeRedemption::Redeemed(_)
        ),
        "a pending code of the removed user is not redeemable"
    );
    // bob keeps everything
    assert!(s.get_user("bob").await.unwrap().is_some());
    assert!(s.get_session("sb", 1500).await.unwrap().is_some());
    assert!(s.get_token("ba", TokenKind::Access, 1500).await.unwrap().is_some());
    assert!(s.get_token("br", TokenKind::Refresh, 1500).await.unwrap().is_some());
    assert!(matches!(
        s.redeem_code("cb2", "c1", 1500).await.unwrap(),
        CodeRedemption::Redeemed(_)
    ));
    let sizes = s.table_sizes().await.unwrap();
    assert_eq!((sizes.users, sizes.sessions, sizes.tokens), (1, 1, 2));
    assert_eq!(
        (sizes.grants, sizes.codes),
        (2, 2),
        "only bob's grants and codes are left"
    );
}
