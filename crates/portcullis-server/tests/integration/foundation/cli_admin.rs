//! Issue 17 items 5 and 9: `user list | show | remove | passwd`, `registration-token list |
//! revoke`, `client list` when empty, `check` on the database, configuration errors, a missing
//! data dir, and pages that never show a client_id as a name.

use super::*;

/// Exit status 1 and one line on stderr containing `needle`.
fn assert_runtime_error(o: &Output, what: &str, needle: &str) -> String {
    let err = stderr_of(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{what}: expected exit 1, got {:?}; stdout {:?} stderr {err:?}",
        o.status,
        stdout_of(o)
    );
    assert_eq!(err.trim().lines().count(), 1, "{what}: one line on stderr: {err:?}");
    assert!(err.contains(needle), "{what}: stderr should mention {needle:?}: {err}");
    err
}

/// `portcullis ARGS --data-dir DIR` with `stdin`.
fn run_with_stdin(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("PORTCULLIS_LOG_LEVEL", "warn");
    run_with_timeout(cmd, stdin.as_bytes(), Duration::from_secs(30))
}

// INTERFACE.md: user list | show
#[tokio::test]
async fn cli_user_list_and_show() {
    let s = Server::start().await;
    let out = s.cli(&["user", "add", "bob", "--password-stdin"], Some("builder"));
    assert!(out.status.success(), "{}", stderr_of(&out));
    let bob_sub = serde_json::from_str::<Value>(&stdout_of(&out)).unwrap()["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = s.cli(&["user", "list"], None);
    assert!(out.status.success(), "user list: {}", stderr_of(&out));
    let list = stdout_of(&out);
    let lines: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(lines.len(), 2, "user list: {list}");
    assert_eq!(lines[0][0], USER, "by username: {list}");
    assert_eq!(lines[1][..2], ["bob", bob_sub.as_str()], "{list}");
    // created, as an RFC 3339 UTC time
    assert!(
        lines[1][2].len() == 20 && lines[1][2].ends_with('Z') && lines[1][2].contains('T'),
        "{list}"
    );

    let out = s.cli(&["user", "show", USER], None);
    assert!(out.status.success(), "user show: {}", stderr_of(&out));
    let shown: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert_eq!(shown["username"], json!(USER));
    assert_eq!(shown["sub"], json!(lines[0][1]));
    assert_eq!(shown["claims"]["email"], json!("alice@example.com"));
    assert!(shown["created_at"].is_i64(), "{shown}");
    let text = stdout_of(&out);
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "user show reveals the password hash: {text}"
    );

    let out = s.cli(&["user", "show", "nobody"], None);
    assert_runtime_error(&out, "user show of an unknown user", "no user nobody");
}

// INTERFACE.md: user remove; a removed user keeps no working token or session
#[tokio::test]
async fn cli_user_remove_revokes_everything_issued_for_them() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let dpop = DpopKey::new();
    let (t, _) = tokens(&s, &rp, &dpop).await;
    let access = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().expect("a refresh token");
    assert_eq!(userinfo(&s, &rp, &dpop, access).await.status(), 200);
    // a browser with a session, and a code not yet redeemed
    let mut browser = Browser::default();
    let par = Par::new(&rp);
    let request_uri = par.push(&s, &rp).await;
    let cb = browser.run(&s, &rp.client_id, &request_uri, "allow").await;
    let pending_code = query(&cb)["code"].clone();

    let out = s.cli(&["user", "remove", USER], None);
    assert!(out.status.success(), "user remove: {}", stderr_of(&out));
    assert_eq!(
        stdout_of(&out).trim(),
        format!("removed {USER}: sessions ended, grants and tokens revoked")
    );

    assert_eq!(
        userinfo(&s, &rp, &dpop, access).await.status(),
        401,
        "the access token still works"
    );
    let params = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), refresh.to_owned()),
    ];
    let r = token_request(&s, &rp, &dpop, params).await;
    assert_eq!(r.status(), 400, "the refresh token still works");
    let r = token_request(&s, &rp, &dpop, code_params(&pending_code, &par.verifier)).await;
    assert_eq!(r.status(), 400, "a code issued before the removal still works");
    // the session ended: the next request asks for a login, which fails
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let (_, _, page) = browser
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert!(page.contains("name=\"password\""), "the session survived: {page}");

    let out = s.cli(&["user", "remove", USER], None);
    assert_runtime_error(&out, "second user remove", "no user alice");
    let out = s.cli(&["user", "list"], None);
    assert!(out.status.success());
    assert_eq!(stdout_of(&out), "");
    assert_eq!(stderr_of(&out).trim(), "no users");
}

// INTERFACE.md: user passwd; the old password stops working and sessions end
#[tokio::test]
async fn cli_user_passwd() {
    let s = Server::start().await;
    let rp = Rp::register(&s).await;
    let mut browser = Browser::default();
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    browser.run(&s, &rp.client_id, &request_uri, "allow").await;

    let out = s.cli(&["user", "passwd", USER, "--password-stdin"], Some("looking-glass"));
    assert!(out.status.success(), "user passwd: {}", stderr_of(&out));
    assert!(
        stdout_of(&out).contains("password changed for alice"),
        "{}",
        stdout_of(&out)
    );

    // the browser's session ended: it is asked to sign in again, and the old password fails
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let (_, _, page) = browser
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert!(page.contains("name=\"password\""), "the session survived: {page}");
    let action = absolute(&s, &form_action(&page));
    let (status, _, _) = browser.post(&s, &action, &login_form(&page, USER, PASSWORD)).await;
    assert_eq!(status, 401, "the old password still works");
    let (_, _, page) = browser
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let (status, _, body) = browser
        .post(&s, &action, &login_form(&page, USER, "looking-glass"))
        .await;
    assert_eq!(status, 303, "the new password fails: {body}");

    for (args, stdin, what, needle) in [
        (
            vec!["user", "passwd", USER],
            Some("x"),
            "passwd from a pipe without the flag",
            "--password-stdin",
        ),
        (
            vec!["user", "passwd", USER, "--password-stdin"],
            Some(""),
            "an empty password",
            "empty",
        ),
    ] {
        let err = assert_usage_error(&s.cli(&args, stdin), what);
        assert!(err.contains(needle), "{what}: {err}");
    }
    let out = s.cli(&["user", "passwd", "nobody", "--password-stdin"], Some("x"));
    assert_runtime_error(&out, "passwd of an unknown user", "no user nobody");
}

/// Runs `portcullis ARGS` on a pseudo-terminal (util-linux `script`), typing each of `lines`
/// once the output so far contains its prompt; returns the exit code and all terminal output.
fn on_terminal(dir: &Path, args: &[&str], lines: &[(&str, &str)]) -> (Option<i32>, String) {
    use std::io::{Read, Write};
    let command = std::iter::once(BIN.to_owned())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .chain(["--data-dir".to_owned(), dir.display().to_string()])
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("PORTCULLIS_LOG_LEVEL", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs a command on a pseudo-terminal");
    let mut input = child.stdin.take().unwrap();
    let mut output = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for (prompt, line) in lines {
        // type only once the prompt is there: echo is off by then
        while !seen.contains(prompt) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no prompt {prompt:?}; terminal output so far: {seen:?}");
                }
            }
        }
        // the next prompt must come after this point
        seen = seen.replacen(prompt, "", 1);
        // the prompt is written just before echo is switched off (as with most programs):
        // a person reads it first, and so does this test
        std::thread::sleep(Duration::from_millis(300));
        input.write_all(format!("{line}\r").as_bytes()).unwrap();
        input.flush().unwrap();
    }
    let status = child.wait().unwrap();
    while let Ok(bytes) = rx.recv_timeout(Duration::from_secs(2)) {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    (status.code(), seen)
}

// Issue 17: on a terminal the password is asked twice and never echoed
#[tokio::test]
async fn cli_passwords_are_read_from_the_terminal_without_echo() {
    let s = Server::start().await;
    let secret = "Tweedledum-and-Tweedledee";
    let (code, screen) = on_terminal(
        &s.dir,
        &["user", "passwd", USER],
        &[("New password for alice: ", secret), ("Repeat it: ", secret)],
    );
    assert_eq!(code, Some(0), "user passwd on a terminal: {screen}");
    assert!(!screen.contains(secret), "the password was echoed: {screen:?}");
    assert!(screen.contains("password changed for alice"), "{screen}");
    // it is the new password
    let rp = Rp::register(&s).await;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (_, _, page) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    let (status, _, _) = b
        .post(&s, &absolute(&s, &form_action(&page)), &login_form(&page, USER, secret))
        .await;
    assert_eq!(status, 303, "the password typed on the terminal was not set");

    // two different answers change nothing
    let (code, screen) = on_terminal(
        &s.dir,
        &["user", "passwd", USER],
        &[("New password for alice: ", "one"), ("Repeat it: ", "two")],
    );
    assert_eq!(code, Some(2), "{screen}");
    assert!(screen.contains("the two passwords differ"), "{screen}");

    // user add asks the same way
    let (code, screen) = on_terminal(
        &s.dir,
        &["user", "add", "carol"],
        &[("New password for carol: ", secret), ("Repeat it: ", secret)],
    );
    assert_eq!(code, Some(0), "user add on a terminal: {screen}");
    assert!(!screen.contains(secret), "the password was echoed: {screen:?}");
    assert!(screen.contains("\"username\":\"carol\""), "{screen}");
}

// Compatibility: `user add` without the flag still reads a piped password
#[tokio::test]
async fn cli_user_add_reads_a_pipe_without_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_with_stdin(tmp.path(), &["user", "add", "dave"], "piped\n");
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("--password-stdin"), "{}", stderr_of(&out));
}

// INTERFACE.md: registration-token create | list | revoke
#[tokio::test]
async fn cli_registration_tokens_are_listed_and_revoked() {
    let s = Server::start().await;
    let out = s.cli(&["registration-token", "list"], None);
    assert!(out.status.success());
    assert_eq!(stdout_of(&out), "", "no tokens yet");
    assert_eq!(stderr_of(&out).trim(), "no initial access tokens");

    let out = s.cli(&["registration-token", "create", "--uses", "2"], None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // scripts read the token as the whole of standard output
    let token = stdout_of(&out).trim().to_owned();
    assert_eq!(stdout_of(&out).lines().count(), 1, "{}", stdout_of(&out));
    // the ID: the first 12 hex digits of the token's SHA-256, on standard error
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let id: String = digest.as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect();
    let err = stderr_of(&out);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("id {id}; expires in 3600 s"))),
        "{err}"
    );
    // the audit event names the token by its ID, never the token
    assert!(
        err.lines()
            .any(|l| l.contains("registration_token_created") && l.contains(&format!("id={id}"))),
        "{err}"
    );
    assert!(!err.contains(&token));
    let unlimited = registration_token(&s, &[]);

    let out = s.cli(&["registration-token", "list"], None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let list = stdout_of(&out);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(
        !list.contains(&token) && !list.contains(&unlimited),
        "list shows a token: {list}"
    );
    let line = list
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not in {list}"));
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 5, "{line}");
    assert!(
        fields[1].starts_with("created 20") && fields[2].starts_with("expires 20"),
        "{line}"
    );
    assert_eq!(fields[3..], ["uses left 2", "active"], "{line}");
    assert!(list.contains("uses left unlimited\tactive"), "{list}");

    // a use is counted
    let key = es256();
    assert_eq!(
        register_raw(&s, Some(&token), &registration_body(&key)).await.status(),
        201
    );
    let out = s.cli(&["registration-token", "list"], None);
    assert!(stdout_of(&out).contains(&format!("{id}\t")) && stdout_of(&out).contains("uses left 1\tactive"));

    let out = s.cli(&["registration-token", "revoke", &id.to_ascii_uppercase()], None);
    assert!(out.status.success(), "revoke: {}", stderr_of(&out));
    assert_eq!(stdout_of(&out).trim(), format!("revoked {id}"));
    let r = register_raw(&s, Some(&token), &registration_body(&key)).await;
    assert_eq!(r.status(), 401, "a revoked token still registers clients");
    assert_eq!(
        register_raw(&s, Some(&unlimited), &registration_body(&key))
            .await
            .status(),
        201,
        "the other token was revoked too"
    );

    let out = s.cli(&["registration-token", "revoke", &id], None);
    assert_runtime_error(&out, "second revoke", &format!("no initial access token with ID {id}"));
    for bad in ["xyz", "0123456789abcdef", ""] {
        let err = assert_usage_error(&s.cli(&["registration-token", "revoke", bad], None), bad);
        assert!(err.contains("12 hex digits"), "{err}");
    }
}

// Issue 17: `client list` says when there are none (stdout stays empty for scripts)
#[tokio::test]
async fn cli_client_list_says_when_there_are_none() {
    let s = Server::start().await;
    let out = s.cli(&["client", "list"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_of(&out), "");
    assert_eq!(stderr_of(&out).trim(), "no clients registered");
}

// Issue 17: a command other than serve does not make a missing data dir
#[tokio::test]
async fn cli_commands_refuse_a_missing_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("typo");
    for args in [
        vec!["user", "list"],
        vec!["user", "add", "eve", "--password-stdin"],
        vec!["user", "passwd", "eve", "--password-stdin"],
        vec!["client", "list"],
        vec!["keys", "list"],
        vec!["registration-token", "create"],
        vec!["registration-token", "list"],
        vec!["check"],
    ] {
        let out = run_with_stdin(&dir, &args, "pw\n");
        let err = assert_usage_error(&out, &format!("{args:?} on a missing data dir"));
        assert_eq!(
            err.trim(),
            format!(
                "portcullis: data directory {} does not exist (run `portcullis serve` first, or pass --data-dir)",
                dir.display()
            )
        );
        assert!(!dir.exists(), "{args:?} created the data dir");
    }
    // an existing, empty one is used (a directory made for the purpose)
    private_dir(&dir);
    let out = run_with_stdin(&dir, &["user", "add", "eve", "--password-stdin"], "pw\n");
    assert!(out.status.success(), "{}", stderr_of(&out));
}

// Issue 17: check verifies the database, and refuses a corrupt or foreign one (exit 1)
#[tokio::test]
async fn cli_check_verifies_the_database() {
    let mut s = Server::start().await;
    dcr_client(&s).await;
    let out = s.cli(&["check"], None);
    assert!(out.status.success(), "check: {}", stderr_of(&out));
    let text = stdout_of(&out);
    assert!(
        text.contains(&format!(
            "# database {}: integrity ok, schema version {}\n",
            s.dir.join("portcullis.db").display(),
            portcullis_store::SCHEMA_VERSION
        )),
        "{text}"
    );
    // migration 7 (signing_keys.activates_at), then migration 8 (interactions)
    assert!(text.contains("integrity ok, schema version 8\n"), "{text}");
    text.parse::<toml::Table>().expect("check output is still TOML");
    s.stop().await;

    let tmp = tempfile::tempdir().unwrap();
    let case = |name: &str, db: Option<&[u8]>| {
        let dir = tmp.path().join(name);
        private_dir(&dir);
        if let Some(bytes) = db {
            std::fs::write(dir.join("portcullis.db"), bytes).unwrap();
        }
        run_bin(&dir, &["check"], &[])
    };
    let good = std::fs::read(s.dir.join("portcullis.db")).unwrap();
    let out = case("copy", Some(&good));
    assert!(out.status.success(), "check of a copy: {}", stderr_of(&out));

    let mut corrupt = good.clone();
    let (from, to) = (corrupt.len() / 4, corrupt.len() * 3 / 4);
    corrupt[from..to].fill(0xa5);
    let out = case("corrupt", Some(&corrupt));
    assert_runtime_error(&out, "check of a corrupt database", "is corrupt");
    assert_eq!(stdout_of(&out), "", "settings printed for a corrupt database");

    let out = case(
        "text",
        Some("this is a text file, not a database\n".repeat(50).as_bytes()),
    );
    assert_runtime_error(&out, "check of a text file", "is not an SQLite database");

    let foreign = {
        let dir = tmp.path().join("foreign-src");
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join("other.db");
        let status = Command::new("sqlite3")
            .arg(&path)
            .arg("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hello');")
            .status();
        match status {
            Ok(st) if st.success() => std::fs::read(&path).unwrap(),
            _ => {
                // no sqlite3 program: an empty file is an empty SQLite database
                Vec::new()
            }
        }
    };
    let out = case("foreign", Some(&foreign));
    assert_runtime_error(
        &out,
        "check of another program's database",
        "is not a Portcullis database",
    );

    let out = case("empty-dir", None);
    let err = assert_usage_error(&out, "check without a database");
    assert!(err.contains("does not exist"), "{err}");
    assert!(
        !tmp.path().join("empty-dir/portcullis.db").exists(),
        "check created a database"
    );
}

// Issue 17: configuration errors name the key, where it came from and the type expected
#[tokio::test]
async fn cli_config_errors_name_key_and_type() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("portcullis.toml");
    std::fs::write(&file, "[tokens]\ncode_lifetime = \"60s\"\n").unwrap();
    let file_arg = file.to_str().unwrap();
    let levels = "off, error, warn, info, debug, trace";
    let expected_file = format!(
        "portcullis: tokens.code_lifetime (in {}): expected an integer, got \"60s\"",
        file.display()
    );
    /// Arguments, environment, and what the message must say.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--config", file_arg], vec![], expected_file.as_str()),
        (
            vec![],
            vec![("PORTCULLIS_TOKENS_CODE_LIFETIME", "60s")],
            "portcullis: tokens.code_lifetime (from PORTCULLIS_TOKENS_CODE_LIFETIME): expected an integer, got \"60s\"",
        ),
        (
            vec![],
            vec![("PORTCULLIS_DPOP_REQUIRE_NONCE", "sometimes")],
            "portcullis: dpop.require_nonce (from PORTCULLIS_DPOP_REQUIRE_NONCE): expected true or false, got \"sometimes\"",
        ),
        (
            vec![],
            vec![("PORTCULLIS_SERVER_LISTEN", "localhost")],
            "portcullis: server.listen (from PORTCULLIS_SERVER_LISTEN): expected an address like 127.0.0.1:8443, got \"localhost\"",
        ),
        (vec![], vec![("PORTCULLIS_LOG_LEVEL", "verbose")], levels),
        (vec![], vec![("PORTCULLIS_LOG_LEVEL", "portcullis=loud")], levels),
    ];
    for (extra, env, needle) in &cases {
        for command in ["check", "serve", "user"] {
            let mut args = vec![command];
            if command == "user" {
                args.push("list");
            }
            args.extend(extra.iter().copied());
            let out = run_bin(&dir, &args, env);
            let err = assert_usage_error(&out, &format!("{command} with {env:?} {extra:?}"));
            assert!(
                err.contains(needle),
                "{command} {env:?}: expected {needle:?}, got {err}"
            );
            assert!(!dir.exists(), "{command} with a bad configuration made the data dir");
        }
    }
}

// Issue 17 item 9: a client without a client_name is not named by its client_id
#[tokio::test]
async fn pages_name_a_nameless_client_neutrally() {
    let s = Server::start().await;
    let key = es256();
    let jwks_file = s.dir.join("nameless-jwks.json");
    std::fs::write(&jwks_file, json!({"keys": [key.public_jwk().to_json()]}).to_string()).unwrap();
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
    let registration: Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    assert!(registration.get("client_name").is_none());
    let rp = Rp {
        client_id: registration["client_id"].as_str().unwrap().to_owned(),
        key,
        registration,
    };
    // the id may only be in the form's hidden field, never in the text
    let shown_id = |page: &str| page.matches(rp.client_id.as_str()).count() > 1;
    let request_uri = Par::new(&rp).push(&s, &rp).await;
    let mut b = Browser::default();
    let (status, _, login) = b
        .get(&s, &Browser::authorization_url(&s, &rp.client_id, &request_uri))
        .await;
    assert_eq!(status, 200);
    assert!(
        login.contains("An application that has not registered a name asks you to sign in."),
        "{login}"
    );
    assert!(!shown_id(&login), "the login page shows the client_id: {login}");
    let (status, headers, _) = b
        .post(
            &s,
            &absolute(&s, &form_action(&login)),
            &login_form(&login, USER, PASSWORD),
        )
        .await;
    assert_eq!(status, 303);
    let next = absolute(&s, headers.get("location").unwrap().to_str().unwrap());
    let (_, _, consent) = b.get(&s, &next).await;
    assert!(
        consent.contains("An application that has not registered a name would like to:"),
        "{consent}"
    );
    assert!(!shown_id(&consent), "the consent page shows the client_id: {consent}");
}
