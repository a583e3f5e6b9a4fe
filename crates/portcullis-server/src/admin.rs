//! The operator's commands on users and on initial access tokens (INTERFACE.md): `user add |
//! list | show | remove | passwd` and `registration-token create | list | revoke`.
//!
//! Passwords are read from standard input with `--password-stdin`, otherwise from the terminal
//! without echo (asked twice); they never appear on a command line or a screen.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use portcullis_core::Store;
use portcullis_core::model::{InitialAccessToken, User};
use portcullis_core::random::{credential, hash};
use serde_json::{Map, Value, json};

use crate::config::Config;
use crate::time::utc;
use crate::{Failure, audit_events, now, parse_duration, rt, setup, users};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (argon2id password hash); asks for the password on the terminal unless
    /// --password-stdin is given
    Add {
        username: String,
        /// Read the password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
        /// A claim for the id_token and userinfo, e.g. email=alice@example.com
        #[arg(long = "claim", value_name = "K=V")]
        claims: Vec<String>,
    },
    /// List users: username, sub and when each was added
    List,
    /// Show one user as JSON (never the password hash)
    Show { username: String },
    /// Remove a user: their sessions end, and every grant, code, access and refresh token
    /// issued for them is revoked
    Remove { username: String },
    /// Set a new password (asked twice on the terminal unless --password-stdin is given); the
    /// user's sessions end
    Passwd {
        username: String,
        /// Read the password from standard input (one line)
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a new initial access token (its ID goes to standard error)
    Create {
        /// Lifetime, e.g. 30m, 1h, 7d
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// Number of registrations it allows (default: any number until it expires)
        #[arg(long)]
        uses: Option<i64>,
    },
    /// List initial access tokens: ID, created, expires, uses left (never the token itself)
    List,
    /// Revoke an initial access token by its ID (from `create` or `list`)
    Revoke { id: String },
}

pub async fn user_command(config: &Config, command: UserCommand) -> Result<(), Failure> {
    match command {
        UserCommand::Add {
            username,
            password_stdin,
            claims,
        } => add_user(config, username, password_stdin, claims).await,
        UserCommand::List => {
            let store = setup::open_store(config).await?;
            let users = store.list_users().await.map_err(rt)?;
            if users.is_empty() {
                eprintln!("no users");
            }
            for u in users {
                println!("{}\t{}\t{}", u.username, u.sub, created(u.created_at));
            }
            Ok(())
        }
        UserCommand::Show { username } => {
            let store = setup::open_store(config).await?;
            let user = existing_user(store.as_ref(), &username).await?;
            let shown = json!({
                "username": user.username,
                "sub": user.sub,
                "created_at": user.created_at,
                "claims": user.claims,
            });
            println!("{}", serde_json::to_string_pretty(&shown).map_err(rt)?);
            Ok(())
        }
        UserCommand::Remove { username } => {
            let store = setup::open_store(config).await?;
            if !store.delete_user(&username).await.map_err(rt)? {
                return Err(no_user(&username));
            }
            audit_events::record_with("user_removed", "success", None, None, &format!("username={username}"));
            println!("removed {username}: sessions ended, grants and tokens revoked");
            Ok(())
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let store = setup::open_store(config).await?;
            existing_user(store.as_ref(), &username).await?;
            let source = PasswordSource::choose(password_stdin, false)?;
            let password_hash = hashed(source.read(&username)?).await?;
            if !store.set_user_password(&username, &password_hash).await.map_err(rt)? {
                return Err(no_user(&username));
            }
            audit_events::record_with(
                "password_changed",
                "success",
                None,
                None,
                &format!("username={username}"),
            );
            println!("password changed for {username}; their sessions were ended");
            Ok(())
        }
    }
}

pub async fn token_command(config: &Config, command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Create { ttl, uses } => {
            let ttl = parse_duration(&ttl).map_err(Failure::Usage)?;
            if uses.is_some_and(|u| u < 1) {
                return Err(Failure::Usage("--uses must be at least 1".into()));
            }
            let store = setup::open_store(config).await?;
            let (token, record) = create_initial_access_token(store.as_ref(), ttl, uses).await?;
            audit_events::record_with(
                "registration_token_created",
                "success",
                None,
                None,
                &format!("id={}", token_id(&record.token_hash)),
            );
            // the token alone on standard output: scripts read it as `$(portcullis ...)`
            println!("{token}");
            eprintln!(
                "id {}; expires in {ttl} s ({}){}",
                token_id(&record.token_hash),
                utc(record.expires_at),
                uses.map(|u| format!(", {u} use(s)")).unwrap_or_default()
            );
            Ok(())
        }
        TokenCommand::List => {
            let store = setup::open_store(config).await?;
            let tokens = store.list_initial_access_tokens().await.map_err(rt)?;
            if tokens.is_empty() {
                eprintln!("no initial access tokens");
            }
            let t = now();
            for token in tokens {
                let status = if token.expires_at <= t {
                    "expired"
                } else if token.uses_left.is_some_and(|u| u <= 0) {
                    "used up"
                } else {
                    "active"
                };
                println!(
                    "{}\tcreated {}\texpires {}\tuses left {}\t{status}",
                    token_id(&token.token_hash),
                    created(token.created_at),
                    utc(token.expires_at),
                    token
                        .uses_left
                        .map_or_else(|| "unlimited".to_owned(), |u| u.max(0).to_string()),
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id } => {
            let id = id.to_ascii_lowercase();
            if id.len() != TOKEN_ID_LEN || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Failure::Usage(format!(
                    "{id:?} is not an initial access token ID ({TOKEN_ID_LEN} hex digits, as `registration-token list` shows)"
                )));
            }
            let store = setup::open_store(config).await?;
            let matching: Vec<InitialAccessToken> = store
                .list_initial_access_tokens()
                .await
                .map_err(rt)?
                .into_iter()
                .filter(|t| token_id(&t.token_hash) == id)
                .collect();
            let [token] = matching.as_slice() else {
                return Err(if matching.is_empty() {
                    Failure::Runtime(format!("no initial access token with ID {id}"))
                } else {
                    Failure::Runtime(format!(
                        "{} initial access tokens have the ID {id}; none was revoked",
                        matching.len()
                    ))
                });
            };
            if !store.delete_initial_access_token(&token.token_hash).await.map_err(rt)? {
                return Err(Failure::Runtime(format!("no initial access token with ID {id}")));
            }
            audit_events::record_with("registration_token_revoked", "success", None, None, &format!("id={id}"));
            println!("revoked {id}");
            Ok(())
        }
    }
}

async fn add_user(config: &Config, username: String, password_stdin: bool, claims: Vec<String>) -> Result<(), Failure> {
    if username.is_empty() || username.len() > 256 || username.chars().any(char::is_control) {
        return Err(Failure::Usage(
            "the username must be 1 to 256 printable characters".into(),
        ));
    }
    let mut claim_map = Map::new();
    for c in claims {
        let Some((k, v)) = c.split_once('=') else {
            return Err(Failure::Usage(format!("--claim {c:?} must look like key=value")));
        };
        if matches!(k, "sub" | "iss" | "aud" | "exp" | "iat") {
            return Err(Failure::Usage(format!("--claim {k} is reserved")));
        }
        let value = match (k, v) {
            ("email_verified", "true") => Value::Bool(true),
            ("email_verified", "false") => Value::Bool(false),
            _ => Value::String(v.to_owned()),
        };
        claim_map.insert(k.to_owned(), value);
    }
    // `user add` has always read a piped password without the flag: scripts may rely on it
    let source = PasswordSource::choose(password_stdin, true)?;
    let store = setup::open_store(config).await?;
    if store.get_user(&username).await.map_err(rt)?.is_some() {
        return Err(Failure::Usage(format!("user {username} already exists")));
    }
    let password_hash = hashed(source.read(&username)?).await?;
    let user = User {
        username: username.clone(),
        sub: uuid::Uuid::new_v4().to_string(),
        password_hash,
        claims: claim_map,
        created_at: Some(now()),
    };
    store.insert_user(&user).await.map_err(rt)?;
    audit_events::record_with(
        "user_created",
        "success",
        None,
        Some(&user.sub),
        &format!("username={username}"),
    );
    println!("{}", json!({ "username": username, "sub": user.sub }));
    Ok(())
}

/// Where a new password comes from.
enum PasswordSource {
    /// One line of standard input (`--password-stdin`).
    Stdin,
    /// The terminal, without echo, asked twice.
    Terminal,
}

impl PasswordSource {
    /// `--password-stdin`, else the terminal. Without a terminal the flag is required (exit 2),
    /// except where `piped_without_flag` keeps an older behaviour.
    fn choose(password_stdin: bool, piped_without_flag: bool) -> Result<Self, Failure> {
        if password_stdin {
            return Ok(Self::Stdin);
        }
        if std::io::stdin().is_terminal() {
            return Ok(Self::Terminal);
        }
        if piped_without_flag {
            eprintln!("reading the password from standard input (use --password-stdin to silence this)");
            return Ok(Self::Stdin);
        }
        Err(Failure::Usage(
            "standard input is not a terminal: pass --password-stdin to read the password from it".into(),
        ))
    }

    fn read(&self, username: &str) -> Result<String, Failure> {
        let password = match self {
            Self::Stdin => {
                let mut input = String::new();
                std::io::stdin()
                    .read_to_string(&mut input)
                    .map_err(|e| Failure::Usage(format!("cannot read the password from standard input: {e}")))?;
                input.lines().next().unwrap_or("").to_owned()
            }
            Self::Terminal => {
                let ask = |prompt: String| {
                    rpassword::prompt_password(prompt)
                        .map_err(|e| Failure::Usage(format!("cannot read the password from the terminal: {e}")))
                };
                let first = ask(format!("New password for {username}: "))?;
                if first.is_empty() {
                    return Err(empty_password());
                }
                if ask("Repeat it: ".to_owned())? != first {
                    return Err(Failure::Usage("the two passwords differ; nothing was changed".into()));
                }
                first
            }
        };
        if password.is_empty() {
            return Err(empty_password());
        }
        Ok(password)
    }
}

fn empty_password() -> Failure {
    Failure::Usage("the password must not be empty".into())
}

/// A new initial access token valid `ttl` seconds for `uses` registrations (any number when
/// `None`), stored hashed; the token itself is returned once, here.
pub(crate) async fn create_initial_access_token(
    store: &dyn Store,
    ttl: i64,
    uses: Option<i64>,
) -> Result<(String, InitialAccessToken), Failure> {
    let token = credential();
    let t = now();
    let record = InitialAccessToken {
        token_hash: hash(&token),
        created_at: Some(t),
        expires_at: t + ttl,
        uses_left: uses,
    };
    store.insert_initial_access_token(&record).await.map_err(rt)?;
    Ok((token, record))
}

/// argon2id, off the async threads (it is deliberately slow).
pub(crate) async fn hashed(password: String) -> Result<String, Failure> {
    tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(rt)?
        .map_err(rt)
}

async fn existing_user(store: &dyn Store, username: &str) -> Result<User, Failure> {
    store
        .get_user(username)
        .await
        .map_err(rt)?
        .ok_or_else(|| no_user(username))
}

fn no_user(username: &str) -> Failure {
    Failure::Runtime(format!("no user {username}"))
}

/// Hex digits in an initial access token's ID.
const TOKEN_ID_LEN: usize = 12;

/// An initial access token's ID: the first 12 hex digits of the SHA-256 of the token, i.e. of
/// the hash that is all the database keeps (`printf %s "$TOKEN" | sha256sum | cut -c1-12`).
/// It names the token without being able to stand in for it.
pub(crate) fn token_id(token_hash: &str) -> String {
    match portcullis_jose::b64url_decode(token_hash) {
        Ok(bytes) => bytes
            .iter()
            .take(TOKEN_ID_LEN / 2)
            .map(|b| format!("{b:02x}"))
            .collect(),
        // not written by this binary; still a stable name for it
        Err(_) => token_hash.chars().take(TOKEN_ID_LEN).collect(),
    }
}

/// A creation time, or `-` where it was not recorded (rows from before schema version 5).
fn created(at: Option<i64>) -> String {
    at.map_or_else(|| "-".to_owned(), utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_times_are_rfc3339_or_unknown() {
        assert_eq!(created(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(created(None), "-");
    }

    /// The documented way to find a token's ID from the token itself.
    #[test]
    fn token_ids_are_hash_prefixes() {
        let token = "example-token";
        let id = token_id(&hash(token));
        assert_eq!(id.len(), TOKEN_ID_LEN);
        // sha256("example-token")
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id, hex[..TOKEN_ID_LEN]);
    }
}
