//! Content-Digest (RFC 9530).

use aws_lc_rs::digest;
use base64::Engine as _;
use sfv::{BareItem, ListEntry};

use crate::SigError;
use crate::structured::parse_dictionary;

const FIELD: &str = "Content-Digest";

/// The `Content-Digest` field value for `body`: `sha-256=:<base64>:` (RFC 9530 §2; HS 5.3.1.1
/// and 5.3.2.1-7 recommend sha-256, which does not depend on the content encoding).
pub fn content_digest(body: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, body);
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(hash.as_ref())
    )
}

/// Checks a received `Content-Digest` field value against the received body (RFC 9530 §2,
/// HS 5.3.1.2-8 / RS-MS-08: the digest is recomputed, otherwise the body is not protected).
///
/// The value must be an sf-dictionary (RFC 9530 §2). Every member whose algorithm we recognise
/// (`sha-256`, `sha-512`, RFC 9530 §5) must be a byte sequence equal to the digest of `body`;
/// members with other algorithm keys are ignored (RFC 9530 §2: unknown algorithms are ignored),
/// and a value with no recognised member is refused, since nothing would have been checked.
pub fn check_content_digest(header_value: &str, body: &[u8]) -> Result<(), SigError> {
    let dict = parse_dictionary(FIELD, header_value)?;
    let mut checked = 0usize;
    for (name, entry) in &dict {
        let (algorithm, label) = match name.as_str() {
            "sha-256" => (&digest::SHA256, "sha-256"),
            "sha-512" => (&digest::SHA512, "sha-512"),
            _ => continue,
        };
        let claimed = match entry {
            ListEntry::Item(item) => match &item.bare_item {
                BareItem::ByteSequence(bytes) => bytes,
                _ => return Err(SigError::malformed(FIELD, format!("{label} must be a byte sequence"))),
            },
            ListEntry::InnerList(_) => {
                return Err(SigError::malformed(FIELD, format!("{label} must be a byte sequence")));
            }
        };
        if digest::digest(algorithm, body).as_ref() != claimed.as_slice() {
            return Err(SigError::DigestMismatch(label));
        }
        checked += 1;
    }
    if checked == 0 {
        return Err(SigError::DigestNoKnownAlgorithm);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_body() {
        // SHA-256 of the empty string.
        assert_eq!(
            content_digest(b""),
            "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
        );
    }

    #[test]
    fn byte_sequence_with_parameters_is_still_checked() {
        let v = content_digest(b"x") + ";p=1";
        assert!(check_content_digest(&v, b"x").is_ok());
        assert_eq!(check_content_digest(&v, b"y"), Err(SigError::DigestMismatch("sha-256")));
    }
}
