//! Small helpers over the `sfv` crate (RFC 8941 structured fields).

use std::collections::HashSet;
use std::convert::Infallible;

use http::HeaderMap;
use sfv::visitor::{DictionaryVisitor, EntryVisitor};
use sfv::{Dictionary, KeyRef, ListEntry, ListSerializer, Parser, Version};

use crate::SigError;

/// The combined value of every line of a field (RFC 9110 §5.3: lines joined with ", "), after
/// the RFC 9421 §2.1 canonicalisation (surrounding whitespace trimmed from each line).
/// `None` when the field is absent. Lines that are not visible ASCII are refused: the signature
/// base is an ASCII string (RFC 9421 §2.5).
pub(crate) fn combined_field(headers: &HeaderMap, name: &str) -> Result<Option<String>, String> {
    let mut out: Option<String> = None;
    for value in headers.get_all(name) {
        let bytes = value.as_bytes();
        if bytes
            .iter()
            .any(|&b| !(b == b' ' || b == b'\t' || (0x21..=0x7e).contains(&b)))
        {
            return Err("the field value has bytes outside visible ASCII".to_owned());
        }
        // Cannot fail: every byte was checked to be ASCII above.
        let text = std::str::from_utf8(bytes).map_err(|_| "the field value is not ASCII".to_owned())?;
        let text = text.trim_matches([' ', '\t']);
        match &mut out {
            None => out = Some(text.to_owned()),
            Some(acc) => {
                acc.push_str(", ");
                acc.push_str(text);
            }
        }
    }
    Ok(out)
}

/// Parses an sf-dictionary (RFC 8941 §4.2.2), refusing a key that appears twice. RFC 8941 keeps
/// the last of duplicates; for signatures that would let a second `sig1` silently replace the
/// first, so we treat it as malformed instead.
pub(crate) fn parse_dictionary(field: &'static str, value: &str) -> Result<Dictionary, SigError> {
    let visitor = DuplicateCheck {
        dict: Dictionary::new(),
        seen: HashSet::new(),
        duplicate: None,
    };
    let (dict, duplicate) = Parser::new(value)
        .with_version(Version::Rfc8941)
        .parse_dictionary_with_visitor(visitor)
        .map_err(|e| SigError::malformed(field, e.to_string()))?;
    if let Some(label) = duplicate {
        return Err(SigError::DuplicateLabel { field, label });
    }
    Ok(dict)
}

/// The RFC 8941 serialisation of one dictionary member value (an item or an inner list).
pub(crate) fn serialize_entry(entry: &ListEntry) -> Option<String> {
    let mut ser = ListSerializer::new();
    ser.members([entry]);
    ser.finish()
}

struct DuplicateCheck {
    dict: Dictionary,
    seen: HashSet<String>,
    duplicate: Option<String>,
}

impl<'de> DictionaryVisitor<'de> for DuplicateCheck {
    type Out = (Dictionary, Option<String>);
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl EntryVisitor<'de>, Self::Error> {
        if !self.seen.insert(key.as_str().to_owned()) && self.duplicate.is_none() {
            self.duplicate = Some(key.as_str().to_owned());
        }
        DictionaryVisitor::entry(&mut self.dict, key)
    }

    fn finish(self) -> Result<Self::Out, Self::Error> {
        Ok((self.dict, self.duplicate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused() {
        assert!(matches!(
            parse_dictionary("Signature", "a=1, b=2, a=3"),
            Err(SigError::DuplicateLabel { label, .. }) if label == "a"
        ));
        assert_eq!(parse_dictionary("Signature", "a=1, b=2").map(|d| d.len()), Ok(2));
    }

    #[test]
    fn combined_field_trims_and_joins() {
        let mut h = HeaderMap::new();
        h.append("cache-control", "  max-age=60 ".parse().unwrap());
        h.append("cache-control", "must-revalidate\t".parse().unwrap());
        assert_eq!(
            combined_field(&h, "cache-control").unwrap().as_deref(),
            Some("max-age=60, must-revalidate")
        );
        assert_eq!(combined_field(&h, "x-absent").unwrap(), None);
    }
}
