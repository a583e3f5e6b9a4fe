//! Signature parameters, the `Signature-Input` and `Signature` fields (RFC 9421 §2.3, §4).

use http::HeaderMap;
use sfv::{BareItem, InnerList, Integer, Item, Key, ListEntry, ListSerializer, Parser, Version};

use crate::SigError;
use crate::components::{ComponentId, MessageView};
use crate::structured::{combined_field, parse_dictionary};

const INPUT: &str = "Signature-Input";
const SIGNATURE: &str = "Signature";

/// The covered components and parameters of one signature: one member value of
/// `Signature-Input` (RFC 9421 §4.1), also the value of the `@signature-params` line (§2.3).
///
/// Parameters keep the order they were received or added in, because the serialisation (and
/// so the signature base) depends on it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureParams {
    inner: InnerList,
    components: Vec<ComponentId>,
    created: Option<i64>,
    expires: Option<i64>,
    nonce: Option<String>,
    alg: Option<String>,
    keyid: Option<String>,
    tag: Option<String>,
}

/// One signature found on a message: its label, parameters and signature bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureEntry {
    pub label: String,
    pub params: SignatureParams,
    pub signature: Vec<u8>,
}

impl SignatureParams {
    /// Parameters covering `components`, with no signature parameters yet.
    /// RFC 9421 §2.5: a component may be listed only once.
    pub fn new(components: Vec<ComponentId>) -> Result<Self, SigError> {
        let items: Vec<Item> = components.iter().map(|c| c.item().clone()).collect();
        check_unique(&components)?;
        Ok(Self {
            inner: InnerList::new(items),
            components,
            created: None,
            expires: None,
            nonce: None,
            alg: None,
            keyid: None,
            tag: None,
        })
    }

    /// Parses one `Signature-Input` member value, e.g.
    /// `("@method" "@target-uri");created=1618884473;keyid="k1"`.
    pub fn parse(member_value: &str) -> Result<Self, SigError> {
        let list: sfv::List = Parser::new(member_value)
            .with_version(Version::Rfc8941)
            .parse_list()
            .map_err(|e| SigError::malformed(INPUT, e.to_string()))?;
        match list.as_slice() {
            [entry] => Self::from_entry(entry),
            _ => Err(SigError::malformed(INPUT, "expected exactly one inner list")),
        }
    }

    /// `created` (RFC 9421 §2.3): creation time, UNIX seconds.
    pub fn with_created(self, t: i64) -> Result<Self, SigError> {
        self.with_integer("created", t)
    }

    /// `expires` (RFC 9421 §2.3): expiry time, UNIX seconds.
    pub fn with_expires(self, t: i64) -> Result<Self, SigError> {
        self.with_integer("expires", t)
    }

    /// `keyid` (RFC 9421 §2.3).
    pub fn with_keyid(self, v: &str) -> Result<Self, SigError> {
        self.with_string("keyid", v)
    }

    /// `alg` (RFC 9421 §2.3): an HTTP Signature Algorithms registry name.
    pub fn with_alg(self, v: &str) -> Result<Self, SigError> {
        self.with_string("alg", v)
    }

    /// `tag` (RFC 9421 §2.3): the application profile, e.g. `fapi-2-request` (HS 5.3.1.1).
    pub fn with_tag(self, v: &str) -> Result<Self, SigError> {
        self.with_string("tag", v)
    }

    /// `nonce` (RFC 9421 §2.3).
    pub fn with_nonce(self, v: &str) -> Result<Self, SigError> {
        self.with_string("nonce", v)
    }

    pub fn components(&self) -> &[ComponentId] {
        &self.components
    }

    /// Whether the exact component identifier (serialised form, e.g. `"@method"` or
    /// `"signature";req;key="sig1"`) is covered.
    pub fn covers(&self, serialized_id: &str) -> bool {
        self.components.iter().any(|c| c.to_string() == serialized_id)
    }

    pub fn created(&self) -> Option<i64> {
        self.created
    }

    pub fn expires(&self) -> Option<i64> {
        self.expires
    }

    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    pub fn keyid(&self) -> Option<&str> {
        self.keyid.as_deref()
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The RFC 8941 serialisation: the `Signature-Input` member value and the value of the
    /// `@signature-params` line of the signature base (RFC 9421 §2.3, §2.5).
    pub fn serialize(&self) -> String {
        let mut ser = ListSerializer::new();
        ser.members([&ListEntry::InnerList(self.inner.clone())]);
        ser.finish().unwrap_or_default()
    }

    /// The signature base for these parameters over `message` (RFC 9421 §2.5).
    pub fn signature_base(&self, message: &MessageView<'_>) -> Result<String, SigError> {
        let mut base = String::new();
        for component in &self.components {
            for value in component.values(message)? {
                base.push_str(&component.to_string());
                base.push_str(": ");
                base.push_str(&value);
                base.push('\n');
            }
        }
        base.push_str("\"@signature-params\": ");
        base.push_str(&self.serialize());
        Ok(base)
    }

    pub(crate) fn from_entry(entry: &ListEntry) -> Result<Self, SigError> {
        let ListEntry::InnerList(inner) = entry else {
            return Err(SigError::malformed(
                INPUT,
                "a member must be an inner list of components",
            ));
        };
        if inner.items.len() > MAX_COMPONENTS {
            return Err(SigError::malformed(
                INPUT,
                format!("a signature may cover at most {MAX_COMPONENTS} components"),
            ));
        }
        let components = inner
            .items
            .iter()
            .map(|item| ComponentId::from_item(item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        check_unique(&components)?;
        let mut out = Self {
            inner: InnerList::new(inner.items.clone()),
            components,
            created: None,
            expires: None,
            nonce: None,
            alg: None,
            keyid: None,
            tag: None,
        };
        for (key, value) in &inner.params {
            out = out.with_param(key.as_str(), value)?;
        }
        Ok(out)
    }

    fn with_integer(self, name: &str, v: i64) -> Result<Self, SigError> {
        let int = Integer::try_from(v).map_err(|_| SigError::malformed(INPUT, format!("{name} is out of range")))?;
        self.with_param(name, &BareItem::Integer(int))
    }

    fn with_string(self, name: &str, v: &str) -> Result<Self, SigError> {
        let s = sfv::String::from_string(v.to_owned())
            .map_err(|_| SigError::malformed(INPUT, format!("{name} is not a valid sf-string")))?;
        self.with_param(name, &BareItem::String(s))
    }

    /// RFC 9421 §2.3: the registered parameters and their types. Unregistered parameters are
    /// kept (they are part of the signed `@signature-params` line).
    fn with_param(mut self, name: &str, value: &BareItem) -> Result<Self, SigError> {
        let int = |v: &BareItem| match v {
            BareItem::Integer(i) => Ok(i64::from(*i)),
            _ => Err(SigError::malformed(INPUT, format!("{name} must be an integer"))),
        };
        let string = |v: &BareItem| match v {
            BareItem::String(s) => Ok(s.as_str().to_owned()),
            _ => Err(SigError::malformed(INPUT, format!("{name} must be a string"))),
        };
        match name {
            "created" => self.created = Some(int(value)?),
            "expires" => self.expires = Some(int(value)?),
            "nonce" => self.nonce = Some(string(value)?),
            "alg" => self.alg = Some(string(value)?),
            "keyid" => self.keyid = Some(string(value)?),
            "tag" => self.tag = Some(string(value)?),
            _ => {}
        }
        let key = Key::from_string(name.to_owned())
            .map_err(|_| SigError::malformed(INPUT, format!("{name:?} is not a valid parameter name")))?;
        if self.inner.params.contains_key(&key) {
            return Err(SigError::malformed(INPUT, format!("{name} appears more than once")));
        }
        self.inner.params.insert(key, value.clone());
        Ok(self)
    }
}

/// Reads every signature on a message (RFC 9421 §4): `Signature-Input` and `Signature` are
/// sf-dictionaries, possibly spread over several field lines, with the same labels on both.
///
/// Strict: a malformed member, a duplicated label, or a label present in one field but not the
/// other fails the whole message.
pub fn parse_signatures(headers: &HeaderMap) -> Result<Vec<SignatureEntry>, SigError> {
    let input = combined_field(headers, "signature-input")
        .map_err(|e| SigError::malformed(INPUT, e))?
        .ok_or(SigError::MissingField(INPUT))?;
    let signature = combined_field(headers, "signature")
        .map_err(|e| SigError::malformed(SIGNATURE, e))?
        .ok_or(SigError::MissingField(SIGNATURE))?;
    let inputs = parse_dictionary(INPUT, &input)?;
    let signatures = parse_dictionary(SIGNATURE, &signature)?;
    // bounded work per request, whatever a client sends
    if inputs.len() > MAX_SIGNATURES || signatures.len() > MAX_SIGNATURES {
        return Err(SigError::malformed(
            INPUT,
            format!("at most {MAX_SIGNATURES} signatures per message"),
        ));
    }
    for label in signatures.keys() {
        if !inputs.contains_key(label.as_str()) {
            return Err(SigError::InputMissingForLabel(label.as_str().to_owned()));
        }
    }
    let mut out = Vec::with_capacity(inputs.len());
    for (label, entry) in &inputs {
        let params = SignatureParams::from_entry(entry)?;
        let bytes = match signatures.get(label.as_str()) {
            None => return Err(SigError::SignatureMissingForLabel(label.as_str().to_owned())),
            Some(ListEntry::Item(item)) if item.params.is_empty() => match &item.bare_item {
                BareItem::ByteSequence(bytes) => bytes.clone(),
                _ => {
                    return Err(SigError::malformed(
                        SIGNATURE,
                        format!("{label} must be a byte sequence"),
                    ));
                }
            },
            Some(_) => {
                return Err(SigError::malformed(
                    SIGNATURE,
                    format!("{label} must be a byte sequence without parameters"),
                ));
            }
        };
        out.push(SignatureEntry {
            label: label.as_str().to_owned(),
            params,
            signature: bytes,
        });
    }
    Ok(out)
}

/// Signatures (labels) a message may carry.
pub const MAX_SIGNATURES: usize = 8;
/// Components one signature may cover (the FAPI profile needs five; RFC 9421 sets no limit,
/// a server must).
pub const MAX_COMPONENTS: usize = 32;

/// Quadratic, but over at most [`MAX_COMPONENTS`] items.
fn check_unique(components: &[ComponentId]) -> Result<(), SigError> {
    for (i, c) in components.iter().enumerate() {
        if components[..i].iter().any(|earlier| earlier == c) {
            return Err(SigError::DuplicateComponent(c.to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The review's L3: a client cannot make the parser do unbounded work.
    #[test]
    fn signatures_and_components_are_capped() {
        let headers = |input: String, signature: String| {
            let mut h = HeaderMap::new();
            h.insert("signature-input", input.parse().unwrap());
            h.insert("signature", signature.parse().unwrap());
            h
        };
        let labels = |n: usize| {
            let input: Vec<String> = (0..n).map(|i| format!("s{i}=(\"@method\");created=1")).collect();
            let sig: Vec<String> = (0..n).map(|i| format!("s{i}=:AAAA:")).collect();
            headers(input.join(", "), sig.join(", "))
        };
        assert!(parse_signatures(&labels(MAX_SIGNATURES)).is_ok());
        assert!(parse_signatures(&labels(MAX_SIGNATURES + 1)).is_err());
        let components = |n: usize| {
            let c: Vec<String> = (0..n).map(|i| format!("\"x-h{i}\"")).collect();
            headers(format!("s=({});created=1", c.join(" ")), "s=:AAAA:".into())
        };
        assert!(parse_signatures(&components(MAX_COMPONENTS)).is_ok());
        let e = parse_signatures(&components(MAX_COMPONENTS + 1)).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn parse_and_reserialise_keep_parameter_order() {
        let v =
            r#"("@method" "@authority");created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd""#;
        let p = SignatureParams::parse(v).unwrap();
        assert_eq!(p.serialize(), v);
        assert_eq!(p.created(), Some(1618884473));
        assert_eq!(p.keyid(), Some("test-key-rsa-pss"));
        assert_eq!(p.nonce(), Some("b3k2pp5k7z-50gnwp.yemd"));
        assert!(p.covers("\"@authority\""));
    }

    #[test]
    fn wrong_parameter_types_are_refused() {
        assert!(SignatureParams::parse(r#"("@method");created="now""#).is_err());
        assert!(SignatureParams::parse(r#"("@method");keyid=1"#).is_err());
        assert!(SignatureParams::parse(r#"("@method" "@method")"#).is_err());
        assert!(SignatureParams::parse(r#""@method";created=1"#).is_err());
    }
}
