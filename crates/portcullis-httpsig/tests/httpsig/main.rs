//! Black-box tests of portcullis-httpsig, one test binary: RFC 9421 / RFC 9530 vectors, FAPI
//! round trips, one negative test per profile rule, and a no-panic property test.

mod common;
mod negative;
mod no_panic;
mod rfc_vectors;
mod round_trip;
