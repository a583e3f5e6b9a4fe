//! Audit events (issue 17 item 2): one structured log event per security-relevant action, with
//! the interaction id, client, subject, client address and outcome, and never a secret.

use super::*;

/// The audit events in the server's JSON log.
fn audit_events(s: &Server) -> Vec<Value> {
    s.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["target"] == "portcullis::audit")
        .collect()
}

fn find<'a>(events: &'a [Value], action: &str, outcome: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["fields"]["action"] == action && e["fields"]["outcome"] == outcome)
        .unwrap_or_else(|| panic!("no audit event {action}/{outcome} in {events:#?}"))
}

#[tokio::test]
async fn a_full_flow_leaves_one_audit_event_per_action() {
    let s = Server::start_with(&[
        ("PORTCULLIS_LOG_LEVEL", "warn,portcullis::audit=info"),
        ("PORTCULLIS_LOG_FORMAT", "json"),
    ])
    .await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();

    // a failed login first, then the flow
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (_, _, page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let (status, _, _) = b
        .post(
            &s,
            &absolute(&s, &form_action(&page)),
            &login_form(&page, USER, "not-the-password"),
        )
        .await;
    assert_eq!(status, 401);

    let (tokens, _) = tokens(&s, &rp, &dpop).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let r = token_request(
        &s,
        &rp,
        &dpop,
        vec![
            ("grant_type".into(), "refresh_token".into()),
            ("refresh_token".into(), refresh.clone()),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut revoke = rp.auth(&s);
    revoke.push(("token".into(), refresh.clone()));
    let r = s
        .http
        .post(s.endpoint("revocation_endpoint"))
        .header("x-fapi-interaction-id", "audit-revoke-1")
        .form(&revoke)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let events = audit_events(&s);
    let sub = {
        let e = find(&events, "login", "success");
        assert_eq!(e["fields"]["client_id"], rp.client_id.as_str());
        e["fields"]["sub"].as_str().unwrap().to_owned()
    };
    assert!(!sub.is_empty());
    let failed = find(&events, "login", "failure");
    assert_eq!(failed["fields"]["client_id"], rp.client_id.as_str());
    assert_eq!(failed["fields"]["sub"], "", "a failed login names no user");
    for (action, outcome) in [
        ("consent", "given"),
        ("code_issued", "success"),
        ("token_issued", "success"),
        ("token_refreshed", "success"),
    ] {
        let e = find(&events, action, outcome);
        assert_eq!(e["fields"]["client_id"], rp.client_id.as_str(), "{action}");
        assert_eq!(e["fields"]["sub"], sub.as_str(), "{action}");
    }
    find(&events, "client_registered", "success");
    let revoked = find(&events, "token_revoked", "success");
    assert_eq!(revoked["fields"]["interaction_id"], "audit-revoke-1");
    assert_eq!(revoked["fields"]["client_address"], "127.0.0.1");
    for e in &events {
        let id = e["fields"]["interaction_id"].as_str().unwrap_or("");
        assert!(!id.is_empty(), "every HTTP audit event has its interaction id: {e}");
    }

    // never a secret
    let log = s.log();
    for secret in [
        tokens["access_token"].as_str().unwrap(),
        refresh.as_str(),
        tokens["id_token"].as_str().unwrap(),
        PASSWORD,
        "not-the-password",
    ] {
        assert!(!log.contains(secret), "the log holds a secret");
    }

    // consent denied
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    b.run(&s, &rp.client_id, &request_uri, "deny").await;
    find(&audit_events(&s), "consent", "denied");
}
