//! Passwords: argon2id (the crate's default parameters, OWASP's minimum: m=19 MiB, t=2, p=1).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

pub fn hash_password(password: &str) -> Result<String, String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| format!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// A fixed argon2id hash checked when the username is unknown, so that both cases cost the same.
static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Verifies off the async threads (argon2 is deliberately slow).
pub async fn verify_password(stored: Option<String>, password: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match stored {
            Some(h) => (h, true),
            None => (
                DUMMY
                    .get_or_init(|| hash_password("portcullis-dummy").unwrap_or_default())
                    .clone(),
                false,
            ),
        };
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
    })
    .await
    .unwrap_or(false)
}
