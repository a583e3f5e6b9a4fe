//! The one error of the lookups a resource depends on (tokens, replay records, client keys).

/// The token source, replay store or client key source failed (not the request's fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError(pub String);
