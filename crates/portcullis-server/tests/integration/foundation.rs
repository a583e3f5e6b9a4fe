//! Discovery, JWKS, registration (RFC 7591/7592), the CLI and restarts.

#[allow(unused_imports)]
use crate::harness::*;
