//! `portcullis demo` (issue 17 item 10): the real command against a fresh server, headless, as
//! the README's quick start runs it; each step line and what it proved; a failing step is
//! exit 1 with its reason.

use crate::harness::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The value after `marker` in `out`, up to the next `)`, `,`, `;` or space.
fn after<'a>(out: &'a str, marker: &str) -> &'a str {
    let i = out.find(marker).unwrap_or_else(|| panic!("{marker:?} not in:\n{out}")) + marker.len();
    let rest = &out[i..];
    let end = rest.find([')', ',', ';', ' ', '\n']).unwrap_or(rest.len());
    &rest[..end]
}

#[tokio::test]
async fn demo_runs_the_whole_flow_headless() {
    let s = Server::start().await;
    let out = s.cli(&["demo", "--user", USER, "--password-stdin"], Some(PASSWORD));
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status.code(),
        text(&out.stderr)
    );
    for line in [
        format!("Portcullis demo: a FAPI 2.0 flow against {}", s.issuer),
        "✓ discovery: issuer matches the metadata (RFC 8414 §3.3); PAR required: true; PKCE S256; iss in responses: true".into(),
        "✓ user: alice exists in the local store".into(),
        "✓ initial access token: made in the local store".into(),
        "✓ registration: client_id ".into(),
        "✓ PAR: request_uri urn:ietf:params:oauth:request_uri:".into(),
        "DPoP nonce required (use_dpop_nonce) and honoured".into(),
        "✓ login and consent: signed in as alice, allowed the scopes on the consent page".into(),
        "✓ authorization response: code received; iss matched the issuer (RFC 9207), state matched".into(),
        "✓ token: DPoP access token (expires in ".into(),
        "✓ id_token: ES256 signature verified with the server JWKS".into(),
        "iss, aud, exp, iat and nonce matched".into(),
        "✓ userinfo: sub matches the id_token; claims: ".into(),
        "✓ demo API: GET /api/accounts → 2 accounts".into(),
        "response signature verified with the server JWKS".into(),
        "✓ demo API, signed: request signed with our client key (RFC 9421".into(),
        "bound to our request signature".into(),
        "✓ sender constraint: the token presented with another key's DPoP proof was refused (401".into(),
        "✓ refresh: new DPoP access token".into(),
        "✓ cleanup: demo client deleted (RFC 7592)".into(),
        "All 17 steps held".into(),
    ] {
        assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains('✗'), "{stdout}");
    // the token is bound to the DPoP key the demo made (introspection's cnf.jkt)
    let jkt = after(&stdout, "DPoP key ES256 jkt=");
    assert_eq!(jkt.len(), 43, "{jkt}");
    assert_eq!(after(&stdout, "bound to our DPoP key (cnf.jkt="), jkt);
    // the claims of `user add --claim` come back from userinfo
    let userinfo = stdout.lines().find(|l| l.starts_with("✓ userinfo")).unwrap();
    assert!(userinfo.contains("email") && userinfo.contains("name"), "{userinfo}");
    // the demo client is gone again
    let list = s.cli(&["client", "list"], None);
    assert!(text(&list.stdout).trim().is_empty(), "{}", text(&list.stdout));
}

#[tokio::test]
async fn demo_fails_clearly_and_creates_missing_users() {
    let s = Server::start().await;

    // a wrong password: exit 1, the failing step and the page's reason, nothing left behind
    let out = s.cli(&["demo", "--user", USER, "--password-stdin"], Some("not-the-password"));
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("✓ PAR: "), "{stdout}");
    assert!(
        stdout.contains(
            "✗ login and consent: login: the server refused the credentials of alice: The username or password is not correct."
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("✓ token"), "{stdout}");
    assert!(
        stderr.contains("portcullis: demo failed at login and consent: "),
        "{stderr}"
    );
    let list = s.cli(&["client", "list"], None);
    assert!(text(&list.stdout).trim().is_empty(), "{}", text(&list.stdout));

    // a user that does not exist is created locally, and the flow completes as that user
    let out = s.cli(&["demo", "--user", "bob", "--password-stdin"], Some("looking-glass"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains("✓ user: created bob in the local store (it did not exist; it stays"),
        "{stdout}"
    );
    // the account it made, and its initial access token, are audit events (never the token)
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("user_created") && stderr.contains("username=bob by=demo"),
        "{stderr}"
    );
    assert!(stderr.contains("registration_token_created"), "{stderr}");
    assert!(stdout.contains("✓ login and consent: signed in as bob"), "{stdout}");
    let show = s.cli(&["user", "show", "bob"], None);
    assert!(show.status.success());

    // a remote issuer needs an initial access token: bad usage, exit 2
    let out = s.cli(&["demo", "--issuer", &s.issuer], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--issuer needs --initial-access-token"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn demo_runs_against_a_named_issuer_with_its_ca() {
    let s = Server::start().await;
    let token = s.initial_access_token();
    let ca = s.ca_path();
    let out = s.cli(
        &[
            "demo",
            "--issuer",
            &s.issuer,
            "--ca",
            ca.to_str().unwrap(),
            "--initial-access-token",
            &token,
            "--user",
            USER,
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    // nothing is made in the store: no user or token step
    assert!(!stdout.contains("✓ user:"), "{stdout}");
    assert!(!stdout.contains("✓ initial access token"), "{stdout}");
    assert!(stdout.contains("All 15 steps held"), "{stdout}");
}
