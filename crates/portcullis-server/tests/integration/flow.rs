//! The FAPI 2.0 Security Profile flow and its refusals.

#[allow(unused_imports)]
use crate::harness::*;
