//! Audit events (issue 17 item 2): one structured log event per security-relevant action, on
//! the `portcullis::audit` target, with the action, its outcome, the `client_id` and the `sub`
//! where known. The request's span adds `interaction_id` and `client_address`; events from the
//! CLI have neither. Never a secret: no token, code, password or assertion, and a failed
//! login names no user (what was typed may be a password).

/// The log target of every audit event (filter on it: `portcullis::audit=info`).
pub const TARGET: &str = "portcullis::audit";

/// The request an action happened in: set for every request by the conventions middleware.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// `x-fapi-interaction-id` (the client's, or minted).
    pub interaction_id: std::sync::Arc<str>,
    /// The peer's address (the proxy's, behind one).
    pub client_address: Option<std::net::IpAddr>,
}

tokio::task_local! {
    /// The current request's context, for the audit events of its handler.
    pub static REQUEST: RequestContext;
}

/// Records one action, with the current request's interaction id and client address (if in
/// one), whatever the log level of the request span.
pub fn record(action: &'static str, outcome: &'static str, client_id: Option<&str>, sub: Option<&str>) {
    record_with(action, outcome, client_id, sub, "");
}

/// [`record`] with a `detail` (never a secret: a token's ID, the new key ids).
pub fn record_with(
    action: &'static str,
    outcome: &'static str,
    client_id: Option<&str>,
    sub: Option<&str>,
    detail: &str,
) {
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let ctx = REQUEST.try_with(Clone::clone).ok();
    let interaction_id = ctx.as_ref().map_or("", |c| &*c.interaction_id);
    let client_address = ctx.as_ref().and_then(|c| c.client_address);
    tracing::info!(
        target: TARGET,
        action,
        outcome,
        client_id = client_id.unwrap_or(""),
        sub = sub.unwrap_or(""),
        interaction_id,
        client_address = client_address.map(tracing::field::display),
        detail,
        "audit"
    );
}
