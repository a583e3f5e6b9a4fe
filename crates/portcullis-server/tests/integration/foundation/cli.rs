//! The command line: users, clients, keys, configuration, restarts and signals.

use super::*;

// INTERFACE.md: user add
#[tokio::test]
async fn cli_user_add() {
    let s = Server::start().await;
    let out = s.cli(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--claim",
            "email=bob@example.com",
        ],
        Some("builder"),
    );
    assert!(out.status.success(), "user add bob: {}", stderr_of(&out));
    let v: Value =
        serde_json::from_str(stdout_of(&out).trim()).unwrap_or_else(|e| panic!("user add output is not JSON: {e}"));
    assert_eq!(v["username"], json!("bob"));
    assert!(v["sub"].as_str().is_some_and(|s| !s.is_empty()));
    // duplicates
    let out = s.cli(&["user", "add", USER, "--password-stdin"], Some("other"));
    let err = assert_usage_error(&out, "duplicate user");
    assert!(err.contains(USER), "the message should name the user: {err}");
    let out = s.cli(&["user", "add", "bob", "--password-stdin"], Some("again"));
    assert_usage_error(&out, "duplicate user bob");
    // an empty password and a reserved claim
    let out = s.cli(&["user", "add", "carol", "--password-stdin"], Some(""));
    assert_usage_error(&out, "empty password");
    let out = s.cli(
        &["user", "add", "dave", "--password-stdin", "--claim", "sub=x"],
        Some("pw"),
    );
    assert_usage_error(&out, "reserved claim");
}

// INTERFACE.md: client add | list | show | remove
#[tokio::test]
async fn cli_client_lifecycle() {
    let s = Server::start().await;
    let key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--redirect-uri",
            REDIRECT_URI_2,
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--name",
            "CLI client",
        ],
        None,
    );
    assert!(out.status.success(), "client add: {}", stderr_of(&out));
    let added: Value = serde_json::from_str(&stdout_of(&out))
        .unwrap_or_else(|e| panic!("client add output is not JSON ({e}): {}", stdout_of(&out)));
    let client_id = added["client_id"].as_str().expect("client_id").to_owned();
    assert_eq!(added["client_name"], json!("CLI client"));
    assert_eq!(added["token_endpoint_auth_method"], json!("private_key_jwt"));
    assert_eq!(added["redirect_uris"], json!([REDIRECT_URI, REDIRECT_URI_2]));

    // the running server accepts it
    let rp = Rp {
        client_id: client_id.clone(),
        key,
        registration: added.clone(),
    };
    Par::new(&rp).push(&s, &rp).await;

    let out = s.cli(&["client", "list"], None);
    assert!(out.status.success());
    let list = stdout_of(&out);
    let line = list
        .lines()
        .find(|l| l.contains(&client_id))
        .unwrap_or_else(|| panic!("client list lacks {client_id}: {list}"));
    assert!(line.contains("CLI client"), "client list line lacks the name: {line}");

    let out = s.cli(&["client", "show", &client_id], None);
    assert!(out.status.success(), "client show: {}", stderr_of(&out));
    let shown: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(shown["client_id"], json!(client_id));
    assert_eq!(shown["client_name"], json!("CLI client"));
    assert_eq!(shown["jwks"], added["jwks"]);

    let out = s.cli(&["client", "remove", &client_id], None);
    assert!(out.status.success(), "client remove: {}", stderr_of(&out));
    let out = s.cli(&["client", "show", &client_id], None);
    assert_usage_error(&out, "client show after remove");
    let out = s.cli(&["client", "remove", &client_id], None);
    assert_usage_error(&out, "second client remove");
    let out = s.cli(&["client", "list"], None);
    assert!(
        !stdout_of(&out).contains(&client_id),
        "client list still shows the removed client"
    );
}

// AS-SP-38 / AS-OPT-23 through the CLI
#[tokio::test]
async fn cli_client_add_refusals() {
    let s = Server::start().await;
    let key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
    let jwks = jwks_file.to_str().unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            "http://client.example.org/cb",
            "--jwks-file",
            jwks,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with an http redirect URI");
    assert!(
        err.contains("redirect") || err.contains("https"),
        "the message should name the problem: {err}"
    );
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "client_secret_basic",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with client_secret_basic");
    assert!(
        err.contains("token_endpoint_auth_method") || err.contains("client_secret_basic"),
        "{err}"
    );
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add without keys");
    assert!(err.contains("jwks"), "{err}");
    // Issue 13 item 11: the CLI goes through the same metadata checks as registration
    let mut enc_with_d = es256().public_jwk().to_json();
    enc_with_d["use"] = json!("enc");
    enc_with_d["d"] = json!(b64url([7u8; 32]));
    let secret_file = s.dir.join("client-jwks-secret.json");
    std::fs::write(
        &secret_file,
        json!({"keys": [key.public_jwk().to_json(), enc_with_d]}).to_string(),
    )
    .unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            secret_file.to_str().unwrap(),
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with a private encryption key");
    assert!(err.contains("jwks") && err.contains("private"), "{err}");
    let out = s.cli(
        &[
            "client",
            "add",
            "--name",
            "Example Bank\u{202E}gnp.exe",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks,
        ],
        None,
    );
    let err = assert_usage_error(&out, "client add with a bidi override in the name");
    assert!(err.contains("client_name"), "{err}");
    let out = s.cli(&["client", "list"], None);
    assert_eq!(stdout_of(&out).trim(), "", "refused client add left a client behind");
}

// INTERFACE.md: `client add --auth tls_client_auth --tls-subject-dn DN | --tls-san-dns D` and
// `--sender-constraint mtls` (AS-SP-30: exactly one subject)
#[tokio::test]
async fn cli_client_add_mtls() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = write_client_ca(ca_dir.path());
    let s = Server::start_with(&[("PORTCULLIS_TLS_CLIENT_CA_FILE", &ca)]).await;
    let add = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "add",
            "--auth",
            "tls_client_auth",
            "--redirect-uri",
            REDIRECT_URI,
        ];
        args.extend_from_slice(extra);
        s.cli(&args, None)
    };
    let out = add(&["--tls-subject-dn", "CN=client,O=Bank", "--sender-constraint", "mtls"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(c["token_endpoint_auth_method"], "tls_client_auth");
    assert_eq!(c["tls_client_auth_subject_dn"], "CN=client,O=Bank");
    assert_eq!(c["tls_client_certificate_bound_access_tokens"], json!(true));
    assert_eq!(c["dpop_bound_access_tokens"], json!(false));
    let out = add(&["--tls-san-dns", "client.example"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(c["tls_client_auth_san_dns"], "client.example");
    assert_eq!(c["dpop_bound_access_tokens"], json!(true));
    for (extra, what) in [
        (vec![], "no subject"),
        (
            vec!["--tls-subject-dn", "CN=a", "--tls-san-dns", "a.example"],
            "two subjects",
        ),
        (
            vec!["--tls-san-dns", "a.example", "--tls-san-dns", "b.example"],
            "two DNS names",
        ),
        (vec!["--tls-subject-dn", "CN=a,,"], "a DN that does not parse"),
        (
            vec!["--tls-subject-dn", "CN=a", "--sender-constraint", "both"],
            "an unknown constraint",
        ),
    ] {
        let out = add(&extra);
        assert_usage_error(&out, what);
    }
    let out = s.cli(&["client", "list"], None);
    assert_eq!(stdout_of(&out).lines().count(), 2, "refusals left clients behind");
}

// AS-SP-21, AS-SP-22, SP 5.4.1: keys list | rotate; old keys stay published
#[tokio::test]
async fn cli_keys_rotate() {
    let mut s = Server::start().await;
    let out = s.cli(&["keys", "list"], None);
    assert!(out.status.success(), "keys list: {}", stderr_of(&out));
    let list = stdout_of(&out);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "keys list: {list}");
    let state = |l: &str| l.split('\t').nth(2).unwrap_or_default().to_owned();
    assert!(lines.iter().all(|l| state(l) == "active"), "keys list: {list}");
    let old: HashSet<String> = lines.iter().map(|l| l.split('\t').next().unwrap().to_owned()).collect();
    let jwks = server_jwks(&s).await;
    assert_eq!(kids(&jwks), old, "keys list and the JWKS disagree");

    let rp = dcr_client(&s).await;
    let first = id_token_of(&s, &rp).await;
    let h = jwt_header(&first);
    assert!(
        old.contains(h["kid"].as_str().unwrap()),
        "id_token kid {h} is not a published key"
    );

    // an immediate (emergency) rotation; pre-publication is in keys.rs
    let out = s.cli(&["keys", "rotate", "--now"], None);
    assert!(out.status.success(), "keys rotate: {}", stderr_of(&out));
    let rotated = stdout_of(&out);
    let new: HashSet<String> = rotated
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(new.len(), 3, "keys rotate should make three keys: {rotated}");
    assert!(new.is_disjoint(&old), "rotation reused a kid");
    // issue 17 item 2: the rotation is an audit event naming the new kids
    let err = stderr_of(&out);
    assert!(
        err.contains("keys_rotated") && new.iter().all(|k| err.contains(k.as_str())),
        "{err}"
    );

    let out = s.cli(&["keys", "list"], None);
    let list = stdout_of(&out);
    assert_eq!(list.lines().count(), 6, "keys list after rotate: {list}");
    for l in list.lines() {
        let kid = l.split('\t').next().unwrap();
        if new.contains(kid) {
            assert_eq!(state(l), "active", "new key not active: {l}");
        } else {
            assert!(old.contains(kid) && state(l) == "retired", "old key still active: {l}");
        }
    }

    // the running server polls every 30 s; a restart picks the keys up at once
    s.restart().await;
    let jwks = server_jwks(&s).await;
    let published = kids(&jwks);
    assert_eq!(published.len(), 6, "JWKS after rotation: {jwks}");
    assert!(published.is_superset(&new), "new kids not published: {jwks}");
    assert!(published.is_superset(&old), "old kids no longer published: {jwks}");

    let second = id_token_of(&s, &rp).await;
    let h = jwt_header(&second);
    let kid = h["kid"].as_str().unwrap();
    assert!(new.contains(kid), "id_token still signed with an old key: {h}");
    // verify it with an independent library against the published key
    let jwk_json = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == json!(kid))
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk_json.clone()).unwrap();
    let alg = match h["alg"].as_str().unwrap() {
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "PS256" => jsonwebtoken::Algorithm::PS256,
        "EdDSA" | "Ed25519" => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("id_token alg {other}"),
    };
    let mut v = jsonwebtoken::Validation::new(alg);
    v.set_audience(&[&rp.client_id]);
    v.set_issuer(&[&s.issuer]);
    let decoded = jsonwebtoken::decode::<Value>(&second, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v)
        .unwrap_or_else(|e| panic!("jsonwebtoken rejects the id_token: {e}"));
    assert!(decoded.claims["sub"].is_string());
}

// INTERFACE.md: check prints the effective configuration
#[tokio::test]
async fn cli_check_prints_effective_config() {
    let s = Server::start().await;
    let out = s.cli(&["check"], None);
    assert!(out.status.success(), "check: {}", stderr_of(&out));
    let text = stdout_of(&out);
    let t: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("check output is not TOML ({e}): {text}"));
    assert_eq!(t["server"]["issuer"].as_str(), Some(s.issuer.as_str()), "{text}");
    assert_eq!(
        t["server"]["listen"].as_str(),
        Some(format!("127.0.0.1:{}", s.port).as_str()),
        "{text}"
    );
    assert_eq!(t["tokens"]["code_lifetime"].as_integer(), Some(60), "{text}");
    assert!(
        t["tokens"]["request_uri_lifetime"]
            .as_integer()
            .is_some_and(|v| v < 600),
        "{text}"
    );
    // issue 17 item 7: the login interaction's own lifetime is shown
    assert_eq!(t["tokens"]["interaction_lifetime"].as_integer(), Some(600), "{text}");
    // a config file is honoured, and env overrides it
    let file = s.dir.join("check.toml");
    std::fs::write(&file, "[tokens]\ncode_lifetime = 30\naccess_token_lifetime = 300\n").unwrap();
    let out = run_bin(
        &s.dir,
        &["check", "--config", file.to_str().unwrap()],
        &[("PORTCULLIS_TOKENS_ACCESS_TOKEN_LIFETIME", "120")],
    );
    assert!(out.status.success(), "check --config: {}", stderr_of(&out));
    let t: toml::Table = stdout_of(&out).parse().unwrap();
    assert_eq!(t["tokens"]["code_lifetime"].as_integer(), Some(30));
    assert_eq!(t["tokens"]["access_token_lifetime"].as_integer(), Some(120));
}

// AS-SP-63 (code ≤ 60 s), AS-SP-40 (request_uri < 600 s), AS-SP-13 (https issuer): bad configuration
#[tokio::test]
async fn cli_bad_config_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let unknown = tmp.path().join("unknown.toml");
    std::fs::write(&unknown, "[server]\nnope = 1\n").unwrap();
    let unknown_section = tmp.path().join("unknown-section.toml");
    std::fs::write(&unknown_section, "[bogus]\nx = 1\n").unwrap();
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<(&str, &str)>, Vec<&str>, &str)> = vec![
        (
            "code lifetime 61",
            vec![("PORTCULLIS_TOKENS_CODE_LIFETIME", "61")],
            vec![],
            "code_lifetime",
        ),
        (
            "request_uri lifetime 600",
            vec![("PORTCULLIS_TOKENS_REQUEST_URI_LIFETIME", "600")],
            vec![],
            "request_uri_lifetime",
        ),
        (
            "interaction lifetime over an hour",
            vec![("PORTCULLIS_TOKENS_INTERACTION_LIFETIME", "3601")],
            vec![],
            "interaction_lifetime",
        ),
        (
            "http issuer",
            vec![("PORTCULLIS_SERVER_ISSUER", "http://x")],
            vec![],
            "issuer",
        ),
        (
            "unknown key",
            vec![],
            vec!["--config", unknown.to_str().unwrap()],
            "nope",
        ),
        (
            "unknown section",
            vec![],
            vec!["--config", unknown_section.to_str().unwrap()],
            "bogus",
        ),
    ];
    for (what, env, extra, needle) in &cases {
        for command in ["check", "serve"] {
            let mut args = vec![command];
            args.extend(extra.iter().copied());
            let out = run_bin(&dir, &args, env);
            let err = assert_usage_error(&out, &format!("{command} with {what}"));
            assert!(
                err.contains(needle),
                "{command} with {what}: stderr should mention {needle}: {err}"
            );
            assert!(
                !stdout_of(&out).contains("listening"),
                "{command} with {what} started serving"
            );
        }
    }
}

// INTERFACE.md: bad usage exits 2
#[tokio::test]
async fn cli_unknown_subcommand_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["frobnicate"],
        vec!["client", "frobnicate"],
        vec!["keys", "burn"],
        vec![],
    ] {
        let out = run_bin(tmp.path(), &args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "portcullis {args:?}: {:?} {}",
            out.status,
            stderr_of(&out)
        );
    }
}

// AS-SP-22 (stable keys), INTERFACE.md: state survives a restart
#[tokio::test]
async fn restart_keeps_keys_clients_users_and_ca() {
    let mut s = Server::start().await;
    let rp = dcr_client(&s).await;
    let cli_key = es256();
    let jwks_file = s.dir.join("client-jwks.json");
    std::fs::write(
        &jwks_file,
        json!({"keys": [cli_key.public_jwk().to_json()]}).to_string(),
    )
    .unwrap();
    let out = s.cli(
        &[
            "client",
            "add",
            "--auth",
            "private_key_jwt",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    let cli_reg: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let cli_rp = Rp {
        client_id: cli_reg["client_id"].as_str().unwrap().to_owned(),
        key: cli_key,
        registration: cli_reg,
    };
    let jwks = server_jwks(&s).await;
    let ca = std::fs::read(s.ca_path()).unwrap();
    let meta = s.meta.clone();

    s.restart().await;

    assert_eq!(server_jwks(&s).await, jwks, "the JWKS changed across a restart");
    assert_eq!(
        std::fs::read(s.ca_path()).unwrap(),
        ca,
        "the CA changed across a restart"
    );
    assert_eq!(s.meta, meta, "the metadata changed across a restart");
    Par::new(&rp).push(&s, &rp).await;
    Par::new(&cli_rp).push(&s, &cli_rp).await;
    let (body, _) = tokens(&s, &rp, &DpopKey::new()).await;
    assert!(body["access_token"].is_string());
    // the registration access token survives too
    let r = s
        .http
        .get(rp.registration["registration_client_uri"].as_str().unwrap())
        .bearer_auth(rp.registration["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "RFC 7592 read after restart");
}

// INTERFACE.md: SIGTERM is a clean shutdown
#[tokio::test]
async fn sigterm_exits_0() {
    let mut s = Server::start().await;
    // INTERFACE.md: the first lines name the issuer, the discovery URL and the CA
    let lines: Vec<&str> = s.stdout.lines().collect();
    assert_eq!(lines[0], format!("issuer: {}", s.issuer), "{}", s.stdout);
    assert!(
        lines[1].contains(&format!("{}/.well-known/openid-configuration", s.issuer)),
        "{}",
        s.stdout
    );
    assert!(lines[2].contains(s.ca_path().to_str().unwrap()), "{}", s.stdout);
    // with a connection open
    assert_eq!(s.http.get(s.endpoint("jwks_uri")).send().await.unwrap().status(), 200);
    let status = s.stop().await.expect("server was running");
    assert!(status.success(), "serve exited with {status:?} on SIGTERM");
    assert_eq!(status.code(), Some(0));
}

/// `client remove` takes effect on a running server at once (INTERFACE.md).
#[tokio::test]
async fn cli_client_remove_takes_effect_immediately() {
    let s = Server::start().await;
    let rp = dcr_client(&s).await;
    assert_eq!(Par::new(&rp).send(&s, &rp, None).await.status(), 201);
    let out = s.cli(&["client", "remove", &rp.client_id], None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let r = Par::new(&rp).send(&s, &rp, None).await;
    assert_eq!(r.status(), 401);
}
