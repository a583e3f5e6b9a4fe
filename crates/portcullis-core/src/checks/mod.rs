//! The executable tables of named checks: each endpoint runs its table in order, each check is
//! a small function whose doc cites its checklist ID and spec clause, and `docs/checks.md` is
//! rendered from the same tables (a test keeps it current).

pub mod authorization;

use std::future::Future;
use std::pin::Pin;

use crate::error::OAuthResult;
use crate::provider::Provider;

/// A boxed check future (an asynchronous check reads or writes storage).
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = OAuthResult<()>> + Send + 'a>>;

/// How a check runs.
pub enum Run<C> {
    /// A check on values already at hand.
    Sync(fn(&Provider, &mut C) -> OAuthResult<()>),
    /// A check that needs storage or the network (client authentication, single-use records).
    Async(for<'a> fn(&'a Provider, &'a mut C) -> CheckFuture<'a>),
}

/// One named check of an endpoint's table.
pub struct Check<C> {
    /// What is checked, as the table shows it.
    pub name: &'static str,
    /// The rule, in a few words.
    pub rule: &'static str,
    /// Checklist IDs (`../shared/spec/fapi2-requirements.md`) and spec clauses.
    pub source: &'static str,
    pub run: Run<C>,
}

/// Runs `checks` in order; the first failure ends the request.
pub async fn run<C: Send>(p: &Provider, checks: &[Check<C>], ctx: &mut C) -> OAuthResult<()> {
    for check in checks {
        match check.run {
            Run::Sync(f) => f(p, ctx)?,
            Run::Async(f) => f(p, ctx).await?,
        }
    }
    Ok(())
}

/// One row of a table as documentation: `(name, rule, source)`.
pub type CheckDoc = (&'static str, &'static str, &'static str);

/// One endpoint's table as documentation, in order.
pub fn describe<C>(checks: &[Check<C>]) -> Vec<CheckDoc> {
    checks.iter().map(|c| (c.name, c.rule, c.source)).collect()
}

/// `docs/checks.md`: every endpoint's table, in the order the checks run.
pub fn render_markdown() -> String {
    let tables: [(&str, &str, Vec<CheckDoc>); 4] = [
        (
            "Pushed authorization request (`POST /par`)",
            "RFC 9126; SP 5.3.2.2. The authorization parameters are checked whatever their source \
             (form fields today, a verified request object later).",
            describe(crate::endpoints::par::PAR_CHECKS),
        ),
        (
            "Authorization endpoint (`GET /authorize`)",
            "RFC 9126 §4; SP 5.3.2.2. Until the pushed request is found, failures are shown to the \
             user; after, they go to the client's registered redirect URI.",
            describe(crate::endpoints::authorize::AUTHORIZE_CHECKS),
        ),
        (
            "Token endpoint, `grant_type=authorization_code`",
            "RFC 6749 §4.1.3; RFC 7636 §4.6; RFC 9449 §5, §10; RFC 8705 §3; SP 5.3.2.1.",
            describe(crate::endpoints::token::CODE_CHECKS),
        ),
        (
            "Token endpoint, `grant_type=refresh_token`",
            "RFC 6749 §6; RFC 9449 §5; RFC 8705 §3; SP 5.3.2.1.",
            describe(crate::endpoints::token::REFRESH_CHECKS),
        ),
    ];
    let mut out = String::from(
        "# The checks each endpoint runs, in order\n\n\
         Generated from the tables in `crates/portcullis-core` (`checks::render_markdown`); the test \
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
