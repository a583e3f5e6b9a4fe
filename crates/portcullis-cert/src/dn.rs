//! Distinguished names: the RFC 4514 string form a client registers, and the subject of a
//! certificate, compared as names rather than as strings (RFC 8705 §2.1.2).

use std::fmt;

use x509_parser::asn1_rs::{Any, Class, FromDer, Tag, ToDer};
use x509_parser::x509::X509Name;

use crate::CertError;

/// An X.501 distinguished name, compared the way RFC 8705 §2.1.2 asks: as a DN, RDN by RDN in
/// order, each RDN a set of attribute type-and-value pairs, attribute types by OID, and string
/// values by RFC 4517 `caseIgnoreMatch` after RFC 4518-style preparation (leading and trailing
/// space removed, inner space runs collapsed to one space, case folded).
///
/// The RDNs are held in ASN.1 order (the order of the certificate's `Name` SEQUENCE), which is
/// the reverse of the RFC 4514 string order.
#[derive(Clone, Debug)]
pub struct DistinguishedName {
    rdns: Vec<Rdn>,
}

/// One relative distinguished name: a set of attributes, kept sorted so that equality is set
/// equality (RFC 4514 §2.2: multi-valued RDNs are written with `+` in any order).
#[derive(Clone, Debug)]
struct Rdn {
    attributes: Vec<Attribute>,
}

#[derive(Clone, Debug)]
struct Attribute {
    /// The attribute type as a dotted-decimal OID.
    oid: String,
    /// The value as compared.
    value: AttributeValue,
    /// The value as written or encoded, for display.
    original: String,
}

/// What an attribute value is compared as.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum AttributeValue {
    /// A directory string, prepared for `caseIgnoreMatch`.
    Text(String),
    /// A value that is not a character string: its whole DER encoding, compared byte for byte.
    Der(Vec<u8>),
}

/// The longest RFC 4514 string accepted; registration metadata has no business being longer.
const MAX_DN_LEN: usize = 4096;
/// The most RDNs, and attributes per RDN, a DN may have (bounded work on either side).
const MAX_RDNS: usize = 64;
const MAX_ATTRIBUTES_PER_RDN: usize = 16;
/// The longest rendering of a DN for logs and messages, in characters.
const MAX_RENDERED_CHARS: usize = 512;

impl DistinguishedName {
    /// Parses an RFC 4514 string such as `CN=client1,OU=Portcullis,O=Example,C=GB` (the form
    /// Java's `X500Principal.getName(RFC2253)` and `openssl -nameopt RFC2253` write).
    ///
    /// Attribute types are the RFC 4514 §3 short names, a few more common names (such as
    /// `emailAddress`, `serialNumber`, `organizationIdentifier`), or dotted-decimal OIDs, all
    /// case-insensitive. Values may use the RFC 4514 §2.4 escapes (`\,` `\+` `\"` `\\` `\<` `\>`
    /// `\;` `\=` `\#` `\ ` and `\XX` hex pairs), or be a `#` followed by the hex BER encoding of
    /// the value. Spaces around `,` `+` and `=` are tolerated (older RFC 1779 style output).
    pub fn parse_rfc4514(input: &str) -> Result<Self, CertError> {
        if input.len() > MAX_DN_LEN {
            return Err(CertError::InvalidDn("it is too long"));
        }
        if input.trim().is_empty() {
            return Err(CertError::InvalidDn("it is empty"));
        }
        let mut parser = Parser {
            bytes: input.as_bytes(),
            pos: 0,
        };
        let mut rdns = Vec::new();
        loop {
            if rdns.len() == MAX_RDNS {
                return Err(CertError::InvalidDn("it has too many RDNs"));
            }
            let mut attributes = Vec::new();
            loop {
                if attributes.len() == MAX_ATTRIBUTES_PER_RDN {
                    return Err(CertError::InvalidDn("an RDN has too many attributes"));
                }
                attributes.push(parser.attribute()?);
                parser.skip_spaces();
                match parser.next() {
                    Some(b'+') => continue,
                    Some(b',') => break,
                    None => {
                        rdns.push(Rdn::new(attributes));
                        // RFC 4514 §2.1: the string lists the RDNs last-to-first.
                        rdns.reverse();
                        return Ok(Self { rdns });
                    }
                    Some(_) => return Err(CertError::InvalidDn("a value is followed by an unexpected character")),
                }
            }
            rdns.push(Rdn::new(attributes));
        }
    }

    /// The subject or issuer name of a certificate, as x509-parser reads it.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Self {
        let rdns = name
            .iter()
            .map(|rdn| {
                Rdn::new(
                    rdn.iter()
                        .map(|attribute| {
                            Attribute::from_any(attribute.attr_type().to_id_string(), attribute.attr_value())
                        })
                        .collect(),
                )
            })
            .collect();
        Self { rdns }
    }

    /// The RFC 4514 string form, bounded in length (for logs and messages). Known attribute
    /// types are written by name, others as dotted-decimal OIDs; values that are not character
    /// strings are written as `#` and their hex DER encoding.
    pub fn to_rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, attribute) in rdn.attributes.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(name_of(&attribute.oid));
                out.push('=');
                match &attribute.value {
                    AttributeValue::Text(_) => escape_value(&attribute.original, &mut out),
                    AttributeValue::Der(der) => {
                        out.push('#');
                        out.push_str(&hex(der));
                    }
                }
            }
            if out.chars().count() > MAX_RENDERED_CHARS {
                break;
            }
        }
        truncate_chars(out, MAX_RENDERED_CHARS)
    }
}

impl PartialEq for DistinguishedName {
    fn eq(&self, other: &Self) -> bool {
        self.rdns.len() == other.rdns.len() && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.matches(b))
    }
}

impl Eq for DistinguishedName {}

impl fmt::Display for DistinguishedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

impl Rdn {
    fn new(mut attributes: Vec<Attribute>) -> Self {
        attributes.sort_by(|a, b| (&a.oid, &a.value).cmp(&(&b.oid, &b.value)));
        Self { attributes }
    }

    fn matches(&self, other: &Rdn) -> bool {
        self.attributes.len() == other.attributes.len()
            && self
                .attributes
                .iter()
                .zip(&other.attributes)
                .all(|(a, b)| a.oid == b.oid && a.value == b.value)
    }
}

impl Attribute {
    /// A value as encoded in a certificate (or in an RFC 4514 `#` hex string). Character
    /// strings of every kind X.520 uses are compared as text; anything else by its DER bytes.
    fn from_any(oid: String, any: &Any<'_>) -> Self {
        match directory_string(any) {
            Some(text) => Self {
                oid,
                value: AttributeValue::Text(prepare(&text)),
                original: text,
            },
            None => {
                // A value x509-parser has already read from DER re-encodes; if it somehow did
                // not, the content octets alone still compare consistently on both sides.
                let der = any.to_der_vec().unwrap_or_else(|_| any.data.to_vec());
                Self {
                    oid,
                    original: String::new(),
                    value: AttributeValue::Der(der),
                }
            }
        }
    }
}

/// The text of a character-string value: UTF8String, PrintableString, IA5String,
/// NumericString and VisibleString (all UTF-8 compatible), BMPString, UniversalString and
/// TeletexString where its content is plain ASCII. `None` for anything else.
fn directory_string(any: &Any<'_>) -> Option<String> {
    if any.class() != Class::Universal || any.header.is_constructed() {
        return None;
    }
    match any.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(any.data).ok().map(str::to_owned)
        }
        Tag::BmpString => any.as_bmpstring().ok().map(|s| s.string()),
        Tag::UniversalString => any.as_universalstring().ok().map(|s| s.string()),
        Tag::TeletexString => any.as_teletexstring().ok().map(|s| s.string()),
        _ => None,
    }
}

/// RFC 4518 §2 string preparation, simplified: insignificant space handling (trim, collapse
/// inner runs to one space) and case folding to lower case for `caseIgnoreMatch`.
fn prepare(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// Attribute type names (case-insensitive) and their OIDs. The first name of an OID is the
/// one written back. RFC 4514 §3 lists CN L ST O OU C STREET DC UID; the rest are the names
/// OpenSSL and Java print for attributes that appear in client certificates.
const ATTRIBUTE_TYPES: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("commonName", "2.5.4.3"),
    ("L", "2.5.4.7"),
    ("localityName", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("stateOrProvinceName", "2.5.4.8"),
    ("O", "2.5.4.10"),
    ("organizationName", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("organizationalUnitName", "2.5.4.11"),
    ("C", "2.5.4.6"),
    ("countryName", "2.5.4.6"),
    ("STREET", "2.5.4.9"),
    ("streetAddress", "2.5.4.9"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("domainComponent", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("userId", "0.9.2342.19200300.100.1.1"),
    ("emailAddress", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
    ("serialNumber", "2.5.4.5"),
    ("SN", "2.5.4.4"),
    ("surname", "2.5.4.4"),
    ("GN", "2.5.4.42"),
    ("givenName", "2.5.4.42"),
    ("title", "2.5.4.12"),
    ("businessCategory", "2.5.4.15"),
    ("postalCode", "2.5.4.17"),
    ("organizationIdentifier", "2.5.4.97"),
    ("jurisdictionC", "1.3.6.1.4.1.311.60.2.1.3"),
    ("jurisdictionST", "1.3.6.1.4.1.311.60.2.1.2"),
    ("jurisdictionL", "1.3.6.1.4.1.311.60.2.1.1"),
];

fn oid_of(name: &str) -> Option<&'static str> {
    ATTRIBUTE_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, oid)| *oid)
}

fn name_of(oid: &str) -> &str {
    ATTRIBUTE_TYPES
        .iter()
        .find(|(_, o)| *o == oid)
        .map_or(oid, |(name, _)| name)
}

/// A cursor over an RFC 4514 string. Every special character is ASCII, so the scan is
/// bytewise; value bytes are collected and must form UTF-8 once unescaped.
struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        Some(b)
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// RFC 4514 §3: attributeTypeAndValue = attributeType EQUALS attributeValue
    fn attribute(&mut self) -> Result<Attribute, CertError> {
        self.skip_spaces();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            self.pos += 1;
        }
        let name = std::str::from_utf8(&self.bytes[start..self.pos])
            .map_err(|_| CertError::InvalidDn("an attribute type is not ASCII"))?;
        let oid = attribute_type(name)?;
        self.skip_spaces();
        if self.next() != Some(b'=') {
            return Err(CertError::InvalidDn("an attribute type is not followed by '='"));
        }
        self.skip_spaces();
        if self.peek() == Some(b'#') {
            self.pos += 1;
            return self.hex_value(oid);
        }
        self.string_value(oid)
    }

    /// RFC 4514 §2.4 / §3: a string value with backslash escapes, up to an unescaped `,` or
    /// `+` or the end.
    fn string_value(&mut self, oid: String) -> Result<Attribute, CertError> {
        let mut value = Vec::new();
        while let Some(b) = self.peek() {
            match b {
                b',' | b'+' => break,
                b'\\' => {
                    self.pos += 1;
                    match self.next() {
                        Some(c @ (b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' | b'#' | b' ')) => {
                            value.push(c)
                        }
                        Some(h) => {
                            let l = self.next();
                            match (hex_digit(h), l.and_then(hex_digit)) {
                                (Some(h), Some(l)) => value.push((h << 4) | l),
                                _ => {
                                    return Err(CertError::InvalidDn(
                                        "a backslash must be followed by a special character or two hex digits",
                                    ));
                                }
                            }
                        }
                        None => return Err(CertError::InvalidDn("it ends with a lone backslash")),
                    }
                }
                b'"' | b';' | b'<' | b'>' | 0 => {
                    return Err(CertError::InvalidDn(
                        "a value holds an unescaped special character (\" ; < > or NUL)",
                    ));
                }
                _ => {
                    value.push(b);
                    self.pos += 1;
                }
            }
        }
        let text = String::from_utf8(value).map_err(|_| CertError::InvalidDn("an escaped value is not UTF-8"))?;
        Ok(Attribute {
            oid,
            value: AttributeValue::Text(prepare(&text)),
            original: text.trim().to_owned(),
        })
    }

    /// RFC 4514 §2.4 / §3: `#` followed by the hex of the BER (here: DER) encoding of the value.
    fn hex_value(&mut self, oid: String) -> Result<Attribute, CertError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let digits = &self.bytes[start..self.pos];
        if digits.is_empty() || !digits.len().is_multiple_of(2) {
            return Err(CertError::InvalidDn("a '#' value must be an even number of hex digits"));
        }
        let der: Vec<u8> = digits
            .chunks(2)
            .filter_map(|pair| Some((hex_digit(pair[0])? << 4) | hex_digit(pair[1])?))
            .collect();
        match Any::from_der(&der) {
            Ok(([], any)) => Ok(Attribute::from_any(oid, &any)),
            _ => Err(CertError::InvalidDn("a '#' value is not one DER-encoded value")),
        }
    }
}

/// RFC 4514 §3: attributeType = descr / numericoid, names case-insensitive. An `OID.` prefix
/// (RFC 1779 style) is tolerated before a numeric OID.
fn attribute_type(name: &str) -> Result<String, CertError> {
    if name.is_empty() {
        return Err(CertError::InvalidDn("an attribute type is missing"));
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return numeric_oid(name);
    }
    if name.len() > 4 && name[..4].eq_ignore_ascii_case("oid.") {
        return numeric_oid(&name[4..]);
    }
    oid_of(name).map(str::to_owned).ok_or(CertError::InvalidDn(
        "an attribute type name is not known (write it as an OID)",
    ))
}

/// RFC 4512 §1.4: numericoid = number 1*( DOT number ), number without leading zeros.
fn numeric_oid(s: &str) -> Result<String, CertError> {
    let arcs: Vec<&str> = s.split('.').collect();
    let valid = arcs.len() >= 2
        && arcs.iter().all(|arc| {
            !arc.is_empty()
                && arc.len() <= 20
                && arc.bytes().all(|b| b.is_ascii_digit())
                && (arc.len() == 1 || !arc.starts_with('0'))
        });
    if !valid {
        return Err(CertError::InvalidDn("an attribute type is not a valid OID"));
    }
    Ok(s.to_owned())
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4514 §2.4: escape the characters that would otherwise end or change the value.
fn escape_value(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02x}"));
                }
            }
            c => out.push(c),
        }
    }
}

pub(crate) fn truncate_chars(mut s: String, max: usize) -> String {
    if let Some((cut, _)) = s.char_indices().nth(max) {
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::parse_rfc4514(s).unwrap()
    }

    #[test]
    fn rdn_order_is_reversed_from_the_string() {
        let parsed = dn("CN=client1,OU=Portcullis,O=Example,C=GB");
        assert_eq!(parsed.rdns.len(), 4);
        assert_eq!(parsed.rdns[0].attributes[0].oid, "2.5.4.6");
        assert_eq!(parsed.rdns[3].attributes[0].oid, "2.5.4.3");
        assert_eq!(parsed.to_rfc4514(), "CN=client1,OU=Portcullis,O=Example,C=GB");
    }

    #[test]
    fn comparison_is_by_oid_case_and_space_insensitive() {
        let a = dn("CN=client1,OU=Portcullis,O=Example,C=GB");
        assert_eq!(a, dn("cn=Client1, ou=PORTCULLIS , o=Example,  c=gb"));
        assert_eq!(
            a,
            dn("2.5.4.3=client1,OID.2.5.4.11=Portcullis,organizationName=Example,C=GB")
        );
        assert_eq!(dn("CN=a  b   c"), dn("CN= A B C "));
        assert_ne!(a, dn("C=GB,O=Example,OU=Portcullis,CN=client1"));
        assert_ne!(a, dn("CN=client2,OU=Portcullis,O=Example,C=GB"));
        assert_ne!(a, dn("CN=client1,O=Example,C=GB"));
        assert_ne!(a, dn("CN=client1,OU=Portcullis,O=Example,C=GB,DC=example"));
    }

    #[test]
    fn escapes() {
        let a = dn(r"CN=Smith\, John,O=A\+B \<x\> \;\=\\\22,C=GB");
        assert_eq!(a.rdns[1].attributes[0].original, r#"A+B <x> ;=\""#);
        assert_eq!(a.rdns[2].attributes[0].original, "Smith, John");
        assert_eq!(dn(r"CN=caf\C3\A9"), dn("CN=CAFÉ"));
        assert_eq!(dn(r"CN=\#1"), dn(r"CN=\231"));
        // Round trip through the rendering.
        assert_eq!(a, dn(&a.to_rfc4514()));
    }

    #[test]
    fn multi_valued_rdns_compare_as_sets() {
        let a = dn("CN=client1+UID=42,O=Example");
        assert_eq!(a.rdns[1].attributes.len(), 2);
        assert_eq!(a, dn("UID=42+CN=client1,O=Example"));
        assert_ne!(a, dn("CN=client1,UID=42,O=Example"));
        assert_ne!(a, dn("CN=client1+UID=43,O=Example"));
    }

    #[test]
    fn hex_values_decode_as_der() {
        // 0c 07 "client1": a UTF8String, as Java writes unknown attribute types.
        assert_eq!(dn("CN=#0c07636c69656e7431"), dn("CN=client1"));
        assert_eq!(dn("2.5.4.97=#0c0450534431"), dn("organizationIdentifier=psd1"));
        assert_eq!(dn("CN=#0403010203").to_rfc4514(), "CN=#0403010203");
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "   ",
            "CN",
            "CN=a,",
            ",CN=a",
            "CN=a,,O=b",
            "CN=a+",
            "=a",
            "XX=a",
            "CN=a\"b",
            "CN=a;O=b",
            "CN=a<b",
            r"CN=a\",
            r"CN=a\zz",
            r"CN=a\4",
            r"CN=\ff",
            "CN=#",
            "CN=#0c",
            "CN=#0c07636c69656e74",
            "1=a",
            "1.02=a",
        ] {
            assert!(
                DistinguishedName::parse_rfc4514(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
        let long = format!("CN={}", "a".repeat(MAX_DN_LEN));
        assert!(DistinguishedName::parse_rfc4514(&long).is_err());
    }
}
