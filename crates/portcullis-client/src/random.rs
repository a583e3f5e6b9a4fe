//! Unguessable values: `state`, `nonce`, PKCE verifiers, `jti`s.

use portcullis_jose::b64url;

/// 32 random bytes, base64url (43 characters): 256 bits, far above RFC 7636 §7.1's minimum.
pub(crate) fn token() -> String {
    let mut b = [0u8; 32];
    // aws-lc's generator aborts the process rather than return weak bytes; an error here is
    // not reachable in practice, and a fixed fallback would be worse than a visible panic
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut b).expect("the system random number generator failed");
    b64url(b)
}
