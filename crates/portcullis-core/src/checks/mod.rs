//! The executable tables of named checks: each endpoint runs its table in order, each check is
//! a small function whose doc cites its checklist ID and spec clause, and `docs/checks.md` is
//! rendered from the same tables (`endpoints::render_markdown`; a test keeps it current).

pub mod authorization;
pub mod request_object;

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
