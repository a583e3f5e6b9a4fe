//! Black-box integration tests: the real binary over real TLS. Test names carry the checklist
//! IDs (../shared/spec/fapi2-requirements.md) of the rules they would catch breaking.

mod harness;

mod demo;
mod flow;
mod foundation;
mod hardening;
mod mtls;
mod resource_crate;
