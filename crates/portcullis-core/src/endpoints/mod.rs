//! One module per endpoint: each takes a typed request, runs its checks and returns a typed
//! response or an [`crate::OAuthError`].

pub mod authorize;
pub mod discovery;
pub mod logout;
pub mod par;
pub mod registration;
pub mod resource;
pub mod revocation;
pub mod token;

use crate::checks::{CheckDoc, describe};

/// `docs/checks.md`: every endpoint's table, in the order the checks run.
pub fn render_markdown() -> String {
    let tables: [(&str, &str, Vec<CheckDoc>); 4] = [
        (
            "Pushed authorization request (`POST /par`)",
            "RFC 9126; SP 5.3.2.2. The authorization parameters are checked whatever their source \
             (form fields, or the claims of a verified request object: JAR, RFC 9101).",
            describe(par::PAR_CHECKS),
        ),
        (
            "Authorization endpoint (`GET /authorize`)",
            "RFC 9126 §4; SP 5.3.2.2. Until the pushed request is found, failures are shown to the \
             user; after, they go to the client's registered redirect URI.",
            describe(authorize::AUTHORIZE_CHECKS),
        ),
        (
            "Token endpoint, `grant_type=authorization_code`",
            "RFC 6749 §4.1.3; RFC 7636 §4.6; RFC 9449 §5, §10; RFC 8705 §3; SP 5.3.2.1.",
            describe(token::CODE_CHECKS),
        ),
        (
            "Token endpoint, `grant_type=refresh_token`",
            "RFC 6749 §6; RFC 9449 §5; RFC 8705 §3; SP 5.3.2.1.",
            describe(token::REFRESH_CHECKS),
        ),
    ];
    let mut out = String::from(
        "# The checks each endpoint runs, in order\n\n\
         Generated from the tables in `crates/portcullis-core` (`endpoints::render_markdown`); the test \
         `checks_doc_is_current` fails when this file and the code differ. Regenerate with \
         `UPDATE_CHECKS_DOC=1 cargo test -p portcullis-core checks_doc_is_current`.\n\
         IDs refer to `../shared/spec/fapi2-requirements.md`.\n",
    );
    for (title, intro, rows) in tables {
        out.push_str(&format!(
            "\n## {title}\n\n{intro}\n\n| # | check | rule | source |\n|---|---|---|---|\n"
        ));
        for (i, (name, rule, source)) in rows.iter().enumerate() {
            out.push_str(&format!("| {} | {name} | {rule} | {source} |\n", i + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    /// The documentation is the code's: `docs/checks.md` must be what the tables render.
    #[test]
    fn checks_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/checks.md");
        let rendered = super::render_markdown();
        if std::env::var_os("UPDATE_CHECKS_DOC").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/checks.md is out of date: run UPDATE_CHECKS_DOC=1 cargo test -p portcullis-core checks_doc_is_current"
        );
    }
}
