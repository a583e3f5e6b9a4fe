//! The non-repudiation evidence log (issue 16 item 5): a JAR + JARM + signed introspection
//! flow leaves its signed messages in the hash-chained log, `portcullis audit show` prints
//! them, `portcullis audit verify` checks them, and finds a modified, a removed (in the
//! middle and first) and a reordered entry in the database file.

use std::time::{Duration, Instant};

use super::*;

const INTERACTION: &str = "audit-flow-0001";

/// A request object carrying `par`'s parameters, signed by the client.
fn request_object(s: &Server, rp: &Rp, par: &Par, aud: &str) -> String {
    let t = now();
    let mut c = serde_json::Map::new();
    for (k, v) in &par.params {
        c.insert(k.clone(), json!(v));
    }
    c.insert("iss".into(), json!(rp.client_id));
    c.insert("aud".into(), json!(aud));
    c.insert("nbf".into(), json!(t));
    c.insert("exp".into(), json!(t + 300));
    let _ = s;
    rp.key.sign_jwt(rp.key.algorithm(), None, &c).unwrap()
}

async fn post_in_interaction(
    s: &Server,
    endpoint: &str,
    params: &[(String, String)],
    interaction: &str,
    accept: Option<&str>,
) -> reqwest::Response {
    let mut req = s
        .http
        .post(s.endpoint(endpoint))
        .header("x-fapi-interaction-id", interaction)
        .form(params);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    req.send().await.unwrap()
}

fn cli_ok(s: &Server, args: &[&str]) -> String {
    let out = s.cli(args, None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `audit verify` on the data dir: exit 1, and the stdout naming the broken link.
fn verify_fails(s: &Server) -> String {
    let out = s.cli(&["audit", "verify"], None);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Puts the intact database back and applies `sql` to it directly.
async fn tamper(db: &std::path::Path, pristine: &std::path::Path, sql: &'static str) {
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(pristine, db).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn issue_16_evidence_log() {
    let mut s = Server::start().await;
    let rp = Rp::register_with(
        &s,
        Algorithm::Es256,
        json!({"introspection_signed_response_alg": "PS256"}),
    )
    .await;
    let key = DpopKey::new();

    // a refused request object leaves nothing (wrong aud)
    let par = Par::new(&rp).set("response_mode", "jwt");
    let mut params = vec![(
        "request".to_owned(),
        request_object(&s, &rp, &par, "https://other.example"),
    )];
    params.extend(rp.auth(&s));
    let r = post_in_interaction(
        &s,
        "pushed_authorization_request_endpoint",
        &params,
        "audit-refused",
        None,
    )
    .await;
    assert_eq!(r.status(), 400);

    // JAR at PAR, a JARM response, tokens, three signed introspection responses
    let mut params = vec![("request".to_owned(), request_object(&s, &rp, &par, &s.issuer))];
    params.extend(rp.auth(&s));
    let r = post_in_interaction(&s, "pushed_authorization_request_endpoint", &params, INTERACTION, None).await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    let request_uri = body["request_uri"].as_str().unwrap();
    let cb = Browser::default().run(&s, &rp.client_id, request_uri, "allow").await;
    let jarm = query(&cb)["response"].clone();
    let claims: Value =
        serde_json::from_slice(&portcullis_jose::b64url_decode(jarm.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let code = claims["code"].as_str().unwrap();
    let r = token_request(&s, &rp, &key, code_params(code, &par.verifier)).await;
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let access_token = t["access_token"].as_str().unwrap();
    let mut introspections = Vec::new();
    for _ in 0..3 {
        let mut params = vec![("token".to_owned(), access_token.to_owned())];
        params.extend(rp.auth(&s));
        let r = post_in_interaction(
            &s,
            "introspection_endpoint",
            &params,
            INTERACTION,
            Some("application/token-introspection+jwt"),
        )
        .await;
        assert_eq!(r.status(), 200);
        introspections.push(r.text().await.unwrap());
    }

    // the writer appends in the background: five entries soon
    let deadline = Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let shown = cli_ok(&s, &["audit", "show", INTERACTION]);
        if shown.matches("\nseq ").count() + usize::from(shown.starts_with("seq ")) == 5 {
            break shown;
        }
        assert!(Instant::now() < deadline, "five entries expected:\n{shown}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lines: Vec<&str> = shown.lines().filter(|l| l.starts_with("seq ")).collect();
    assert!(
        lines[0].starts_with("seq 1 ") && lines[0].contains("request_object received"),
        "{shown}"
    );
    assert!(lines[1].contains("authorization_response sent"), "{shown}");
    assert!(
        lines[2].contains("introspection_response sent") && lines[2].contains("alg PS256"),
        "{shown}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("signature valid") && l.contains(&rp.client_id)),
        "{shown}"
    );
    assert!(
        shown.contains(&jarm) && shown.contains(&introspections[0]),
        "the messages as sent"
    );
    assert!(shown.contains("\"token_introspection\""), "pretty claims:\n{shown}");
    assert!(
        cli_ok(&s, &["audit", "show", "audit-refused"]).is_empty(),
        "nothing for a refused request"
    );
    let verified = cli_ok(&s, &["audit", "verify"]);
    assert!(verified.contains("intact: 5 entries checked"), "{verified}");

    // tampering with the file, on a stopped server (a clean close checkpoints the WAL)
    s.stop().await;
    let db = s.dir.join("portcullis.db");
    let pristine = s.dir.join("pristine.db");
    std::fs::copy(&db, &pristine).unwrap();
    assert!(cli_ok(&s, &["audit", "verify"]).contains("intact: 5 entries checked"));

    tamper(
        &db,
        &pristine,
        "UPDATE audit_log SET client_id = 'mallory' WHERE seq = 3",
    )
    .await;
    let out = verify_fails(&s);
    assert!(out.contains("broken: seq 3:") && out.contains("modified"), "{out}");

    tamper(
        &db,
        &pristine,
        "UPDATE audit_log SET message = replace(message, 'e', 'f') WHERE seq = 2",
    )
    .await;
    let out = verify_fails(&s);
    assert!(out.contains("broken: seq 2:") && out.contains("modified"), "{out}");

    tamper(&db, &pristine, "DELETE FROM audit_log WHERE seq = 3").await;
    let out = verify_fails(&s);
    assert!(
        out.contains("broken: seq 4:") && out.contains("entry 3") && out.contains("removed"),
        "{out}"
    );

    tamper(
        &db,
        &pristine,
        "UPDATE audit_log SET seq = -1 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3; \
         UPDATE audit_log SET seq = 3 WHERE seq = -1;",
    )
    .await;
    let out = verify_fails(&s);
    assert!(out.contains("broken: seq 2:") && out.contains("reordered"), "{out}");

    tamper(&db, &pristine, "DELETE FROM audit_log WHERE seq = 1").await;
    let out = verify_fails(&s);
    assert!(
        out.contains("broken: seq 2:") && out.contains("entry 1") && out.contains("removed"),
        "{out}"
    );

    // the anchor is checked too: a purge (retention) anchors the chain; a forged anchor breaks it
    tamper(
        &db,
        &pristine,
        "INSERT INTO audit_anchor (id, seq, hash) VALUES (1, 0, \
         '0000000000000000000000000000000000000000000000000000000000000001')",
    )
    .await;
    let out = verify_fails(&s);
    assert!(out.contains("broken: seq 1:"), "{out}");

    // the intact file verifies again
    tamper(&db, &pristine, "SELECT 1").await;
    assert!(cli_ok(&s, &["audit", "verify"]).contains("intact: 5 entries checked"));
}
