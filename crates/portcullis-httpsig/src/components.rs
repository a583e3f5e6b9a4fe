//! HTTP message components (RFC 9421 §2): identifiers and their canonical values.

use std::fmt;

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sfv::{BareItem, Item, ItemSerializer, Key, Parameters};

use crate::SigError;
use crate::structured::{combined_field, parse_dictionary, serialize_entry};

/// An HTTP request as the signer sent it or the verifier received it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub method: &'a str,
    /// The absolute target URI as the client sent it (RFC 9421 §2.2.2), e.g.
    /// `https://rs.example.com/accounts?x=1`. A server behind a proxy must rebuild the URI the
    /// client used (RFC 9421 §1.4).
    pub target_uri: &'a str,
    pub headers: &'a HeaderMap,
}

/// An HTTP response.
#[derive(Debug, Clone, Copy)]
pub struct ResponseView<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
}

/// The message a signature base is built from: a request, or a response together with the
/// request it answers (needed for components with the `req` flag, RFC 9421 §2.4).
#[derive(Debug, Clone, Copy)]
pub enum MessageView<'a> {
    Request(RequestView<'a>),
    Response {
        response: ResponseView<'a>,
        request: Option<RequestView<'a>>,
    },
}

/// A component identifier (RFC 9421 §2): a component name with parameters, serialised as an
/// sf-string with parameters (`"@method"`, `"signature";req;key="sig1"`).
///
/// Only the parameters this crate implements are accepted: `req` (§2.4), `key` (§2.1.2),
/// `sf` (§2.1.1) and `name` on `@query-param` (§2.2.8). `bs` and `tr` are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentId {
    item: Item,
    name: String,
    req: bool,
    sf: bool,
    key: Option<String>,
    query_name: Option<String>,
}

/// RFC 9421 §2.2: the derived components we know.
const DERIVED: [&str; 9] = [
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
    "@query-param",
    "@status",
];

/// Fields that are sf-dictionaries, for the `sf` flag (RFC 9421 §2.1.1 needs the field's type).
const DICTIONARY_FIELDS: [&str; 6] = [
    "signature",
    "signature-input",
    "content-digest",
    "repr-digest",
    "want-content-digest",
    "want-repr-digest",
];

/// The WHATWG `application/x-www-form-urlencoded` percent-encode set, used to re-encode query
/// parameter names and values (RFC 9421 §2.2.8).
const FORM_URLENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'*').remove(b'-').remove(b'.').remove(b'_');

impl ComponentId {
    /// A component without parameters: a derived component (`@method`) or a field name
    /// (lower-cased, RFC 9421 §2.1).
    pub fn new(name: &str) -> Result<Self, SigError> {
        let bare = sfv::String::from_string(name.to_owned())
            .map_err(|_| SigError::invalid_component(&format!("{name:?}"), "not a valid sf-string"))?;
        Self::from_item(Item::new(bare))
    }

    /// The same component with the `req` flag (RFC 9421 §2.4): taken from the request that a
    /// response answers.
    pub fn with_req(self) -> Result<Self, SigError> {
        self.with_param("req", BareItem::Boolean(true))
    }

    /// The same component with `key="<member>"` (RFC 9421 §2.1.2): one member of a dictionary field.
    pub fn with_key(self, member: &str) -> Result<Self, SigError> {
        let value = sfv::String::from_string(member.to_owned())
            .map_err(|_| SigError::invalid_component(&self, "the key member is not a valid sf-string"))?;
        self.with_param("key", BareItem::String(value))
    }

    /// `@query-param;name="<encoded name>"` (RFC 9421 §2.2.8).
    pub fn query_param(encoded_name: &str) -> Result<Self, SigError> {
        let value = sfv::String::from_string(encoded_name.to_owned())
            .map_err(|_| SigError::invalid_component(&"\"@query-param\"", "the name is not a valid sf-string"))?;
        let mut params = Parameters::new();
        params.insert(sfv::KeyRef::constant("name").to_owned(), BareItem::String(value));
        Self::from_item(Item::with_params(
            sfv::StringRef::constant("@query-param").to_owned(),
            params,
        ))
    }

    /// Interprets one member of a covered-components inner list (RFC 9421 §2, §2.1, §2.2).
    pub(crate) fn from_item(item: Item) -> Result<Self, SigError> {
        let printable = serialize_item(&item);
        let BareItem::String(name) = &item.bare_item else {
            return Err(SigError::invalid_component(
                &printable,
                "a component identifier must be a string",
            ));
        };
        let name = name.as_str().to_owned();
        let derived = name.starts_with('@');
        if name.is_empty() {
            return Err(SigError::invalid_component(&printable, "empty component name"));
        }
        if name == "@signature-params" {
            // RFC 9421 §2.3: never listed among the covered components.
            return Err(SigError::invalid_component(
                &printable,
                "@signature-params cannot be covered",
            ));
        }
        if derived && !DERIVED.contains(&name.as_str()) {
            return Err(SigError::invalid_component(&printable, "unknown derived component"));
        }
        if !derived
            && (name.bytes().any(|b| b.is_ascii_uppercase()) || http::HeaderName::from_bytes(name.as_bytes()).is_err())
        {
            // RFC 9421 §2.1: the component name of a field is its lower-cased field name.
            return Err(SigError::invalid_component(&printable, "not a lower-case field name"));
        }
        let (mut req, mut sf, mut key, mut query_name) = (false, false, None, None);
        for (param, value) in &item.params {
            match (param.as_str(), value) {
                ("req", BareItem::Boolean(true)) => req = true,
                ("sf", BareItem::Boolean(true)) if !derived => sf = true,
                ("key", BareItem::String(k)) if !derived => key = Some(k.as_str().to_owned()),
                ("name", BareItem::String(n)) if name == "@query-param" => query_name = Some(n.as_str().to_owned()),
                ("bs" | "tr", _) => {
                    return Err(SigError::invalid_component(
                        &printable,
                        format!("the {} parameter is not supported", param.as_str()),
                    ));
                }
                (other, _) => {
                    return Err(SigError::invalid_component(
                        &printable,
                        format!("unexpected parameter {other:?}"),
                    ));
                }
            }
        }
        if sf && key.is_some() {
            return Err(SigError::invalid_component(&printable, "sf and key cannot be combined"));
        }
        if name == "@query-param" && query_name.is_none() {
            // RFC 9421 §2.2.8: the name parameter is required.
            return Err(SigError::invalid_component(
                &printable,
                "@query-param needs a name parameter",
            ));
        }
        if sf && !DICTIONARY_FIELDS.contains(&name.as_str()) {
            return Err(SigError::invalid_component(
                &printable,
                "sf is supported only for fields known to be dictionaries",
            ));
        }
        Ok(Self {
            item,
            name,
            req,
            sf,
            key,
            query_name,
        })
    }

    /// The component name (`@method`, `content-digest`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the `req` flag is set.
    pub fn is_req(&self) -> bool {
        self.req
    }

    /// The `key` parameter, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The sf-item the identifier is serialised from.
    pub(crate) fn item(&self) -> &Item {
        &self.item
    }

    /// The component values for `message` (RFC 9421 §2.1, §2.2). Usually one; `@query-param`
    /// yields one value per occurrence of the parameter (§2.2.8).
    pub(crate) fn values(&self, message: &MessageView<'_>) -> Result<Vec<String>, SigError> {
        let source = match (message, self.req) {
            (MessageView::Request(_), true) => {
                // RFC 9421 §2.4: req only makes sense in a response.
                return Err(SigError::invalid_component(
                    self,
                    "req is only allowed in a response signature",
                ));
            }
            (MessageView::Request(req), false) => Source::Request(req),
            (MessageView::Response { request: Some(req), .. }, true) => Source::Request(req),
            (MessageView::Response { request: None, .. }, true) => {
                return Err(SigError::invalid_component(
                    self,
                    "the related request is not available",
                ));
            }
            (MessageView::Response { response, .. }, false) => Source::Response(response),
        };
        if self.name.starts_with('@') {
            return self.derived_value(&source);
        }
        let headers = match source {
            Source::Request(r) => r.headers,
            Source::Response(r) => r.headers,
        };
        let value = combined_field(headers, &self.name)
            .map_err(|reason| SigError::invalid_component(self, reason))?
            .ok_or_else(|| SigError::ComponentMissing(self.to_string()))?;
        if let Some(member) = &self.key {
            // RFC 9421 §2.1.2: the field is parsed as a dictionary and the named member serialised.
            let dict = parse_dictionary(field_label(&self.name), &value)?;
            let entry = dict
                .get(member.as_str())
                .ok_or_else(|| SigError::ComponentMissing(self.to_string()))?;
            return serialize_entry(entry)
                .map(|s| vec![s])
                .ok_or_else(|| SigError::invalid_component(self, "the member cannot be serialised"));
        }
        if self.sf {
            // RFC 9421 §2.1.1: re-serialise the structured field.
            let dict = parse_dictionary(field_label(&self.name), &value)?;
            let mut ser = sfv::DictSerializer::new();
            ser.members(&dict);
            return Ok(vec![ser.finish().unwrap_or_default()]);
        }
        Ok(vec![value])
    }

    fn derived_value(&self, source: &Source<'_, '_>) -> Result<Vec<String>, SigError> {
        let request = match (source, self.name.as_str()) {
            (Source::Response(resp), "@status") => return Ok(vec![format!("{:03}", resp.status)]),
            (Source::Request(_), "@status") => {
                // RFC 9421 §2.2.9: @status only exists in responses.
                return Err(SigError::invalid_component(
                    self,
                    "@status is only defined for responses",
                ));
            }
            (Source::Response(_), _) => {
                // RFC 9421 §2.2: request-derived components in a response need the req flag.
                return Err(SigError::invalid_component(
                    self,
                    "a request component in a response needs req",
                ));
            }
            (Source::Request(req), _) => req,
        };
        let uri = TargetUri::parse(request.target_uri)?;
        let value = match self.name.as_str() {
            // RFC 9421 §2.2.1: the method, as is (case-sensitive).
            "@method" => {
                if request.method.is_empty() || !request.method.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(SigError::invalid_component(self, "the method is not a token"));
                }
                request.method.to_owned()
            }
            // RFC 9421 §2.2.2: the full target URI.
            "@target-uri" => request.target_uri.to_owned(),
            // RFC 9421 §2.2.3: host and port, lower-cased, default port omitted.
            "@authority" => uri.authority(),
            // RFC 9421 §2.2.4: the scheme, lower-cased.
            "@scheme" => uri.scheme.to_ascii_lowercase(),
            // RFC 9421 §2.2.5: the request target in origin form.
            "@request-target" => match uri.query {
                Some(q) => format!("{}?{q}", uri.path()),
                None => uri.path().to_owned(),
            },
            // RFC 9421 §2.2.6: the absolute path; empty becomes "/".
            "@path" => uri.path().to_owned(),
            // RFC 9421 §2.2.7: "?" and the query; "?" alone when there is none.
            "@query" => format!("?{}", uri.query.unwrap_or("")),
            "@query-param" => return self.query_param_values(uri.query.unwrap_or("")),
            _ => return Err(SigError::invalid_component(self, "unknown derived component")),
        };
        Ok(vec![value])
    }

    /// RFC 9421 §2.2.8: the query is parsed as `application/x-www-form-urlencoded`; names and
    /// values are decoded and re-encoded with the form-urlencoded percent-encode set; every
    /// occurrence of the name gives one value, in order.
    fn query_param_values(&self, query: &str) -> Result<Vec<String>, SigError> {
        let wanted = self.query_name.as_deref().unwrap_or_default();
        let values: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| utf8_percent_encode(name, FORM_URLENCODED).to_string() == wanted)
            .map(|(_, value)| utf8_percent_encode(&value, FORM_URLENCODED).to_string())
            .collect();
        if values.is_empty() {
            return Err(SigError::ComponentMissing(self.to_string()));
        }
        Ok(values)
    }
}

impl fmt::Display for ComponentId {
    /// The serialised identifier, as it appears in the signature base (`"@method"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serialize_item(&self.item))
    }
}

impl ComponentId {
    fn with_param(mut self, name: &str, value: BareItem) -> Result<Self, SigError> {
        let key = Key::from_string(name.to_owned())
            .map_err(|_| SigError::invalid_component(&self, "invalid parameter name"))?;
        let mut params: Parameters = self.item.params.clone();
        params.insert(key, value);
        self.item.params = params;
        Self::from_item(self.item)
    }
}

enum Source<'r, 'a> {
    Request(&'r RequestView<'a>),
    Response(&'r ResponseView<'a>),
}

/// The parts of an absolute `http`/`https` URI (RFC 3986 §3), split without normalising, so
/// the derived components keep what the client sent (RFC 9421 §2.2).
struct TargetUri<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> TargetUri<'a> {
    fn parse(uri: &'a str) -> Result<Self, SigError> {
        if !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SigError::InvalidTargetUri("it must be visible ASCII without spaces"));
        }
        if uri.contains('#') {
            return Err(SigError::InvalidTargetUri("a target URI has no fragment"));
        }
        let (scheme, rest) = uri.split_once("://").ok_or(SigError::InvalidTargetUri(
            "it must be absolute (scheme://authority/path)",
        ))?;
        if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
            return Err(SigError::InvalidTargetUri("the scheme must be http or https"));
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path_and_query) = rest.split_at(authority_end);
        if authority.is_empty() {
            return Err(SigError::InvalidTargetUri("the authority is empty"));
        }
        if authority.contains('@') {
            // RFC 9110 §4.2.4: userinfo is not allowed in http(s) URIs.
            return Err(SigError::InvalidTargetUri("userinfo is not allowed"));
        }
        let (host, port) = if authority.starts_with('[') {
            let close = authority
                .find(']')
                .ok_or(SigError::InvalidTargetUri("unterminated IPv6 literal"))?;
            let (host, after) = authority.split_at(close + 1);
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(SigError::InvalidTargetUri("junk after the IPv6 literal")),
            }
        } else {
            match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if let Some(port) = port
            && !port.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(SigError::InvalidTargetUri("the port is not a number"));
        }
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path_and_query, None),
        };
        Ok(Self {
            scheme,
            host,
            port,
            path,
            query,
        })
    }

    fn authority(&self) -> String {
        let default_port = if self.scheme.eq_ignore_ascii_case("https") {
            "443"
        } else {
            "80"
        };
        let host = self.host.to_ascii_lowercase();
        match self.port {
            Some(port) if !port.is_empty() && port != default_port => format!("{host}:{port}"),
            _ => host,
        }
    }

    fn path(&self) -> &str {
        if self.path.is_empty() { "/" } else { self.path }
    }
}

fn serialize_item(item: &Item) -> String {
    ItemSerializer::new()
        .bare_item(&item.bare_item)
        .parameters(&item.params)
        .finish()
}

fn field_label(name: &str) -> &'static str {
    match name {
        "signature" => "Signature",
        "signature-input" => "Signature-Input",
        "content-digest" => "Content-Digest",
        _ => "dictionary field",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(uri: &'a str, headers: &'a HeaderMap) -> MessageView<'a> {
        MessageView::Request(RequestView {
            method: "POST",
            target_uri: uri,
            headers,
        })
    }

    fn value(id: &ComponentId, msg: &MessageView<'_>) -> Vec<String> {
        id.values(msg).unwrap()
    }

    #[test]
    fn derived_components_follow_rfc_9421_section_2_2() {
        let h = HeaderMap::new();
        // RFC 9421 §2.2 examples use this URI.
        let m = req("https://www.example.com/path?param=value", &h);
        let v = |n: &str| value(&ComponentId::new(n).unwrap(), &m).remove(0);
        assert_eq!(v("@method"), "POST");
        assert_eq!(v("@target-uri"), "https://www.example.com/path?param=value");
        assert_eq!(v("@authority"), "www.example.com");
        assert_eq!(v("@scheme"), "https");
        assert_eq!(v("@request-target"), "/path?param=value");
        assert_eq!(v("@path"), "/path");
        assert_eq!(v("@query"), "?param=value");
    }

    #[test]
    fn authority_drops_default_port_and_lowercases() {
        let h = HeaderMap::new();
        let id = ComponentId::new("@authority").unwrap();
        assert_eq!(value(&id, &req("https://EXAMPLE.com:443/", &h)), ["example.com"]);
        assert_eq!(value(&id, &req("https://example.com:8443/", &h)), ["example.com:8443"]);
        assert_eq!(value(&id, &req("http://[::1]:80/", &h)), ["[::1]"]);
    }

    #[test]
    fn empty_path_and_query() {
        let h = HeaderMap::new();
        let m = req("https://example.com", &h);
        assert_eq!(value(&ComponentId::new("@path").unwrap(), &m), ["/"]);
        assert_eq!(value(&ComponentId::new("@query").unwrap(), &m), ["?"]);
    }

    #[test]
    fn query_params_are_reencoded() {
        // RFC 9421 §2.2.8 example.
        let h = HeaderMap::new();
        let m = req(
            "https://example.com/parameters?var=this%20is%20a%20big%0Avalue&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something",
            &h,
        );
        let q = |n: &str| value(&ComponentId::query_param(n).unwrap(), &m);
        assert_eq!(q("var"), ["this%20is%20a%20big%0Avalue"]);
        assert_eq!(q("bar"), ["with%20plus%20whitespace"]);
        assert_eq!(q("fa%C3%A7ade%22%3A%20"), ["something"]);
        assert!(matches!(
            ComponentId::query_param("absent").unwrap().values(&m),
            Err(SigError::ComponentMissing(_))
        ));
        let m2 = req("https://example.com/?a=1&a=2", &h);
        assert_eq!(value(&ComponentId::query_param("a").unwrap(), &m2), ["1", "2"]);
    }

    #[test]
    fn identifiers_serialise_with_parameters() {
        let id = ComponentId::new("signature")
            .unwrap()
            .with_req()
            .unwrap()
            .with_key("sig1")
            .unwrap();
        assert_eq!(id.to_string(), r#""signature";req;key="sig1""#);
        assert!(ComponentId::new("Authorization").is_err());
        assert!(ComponentId::new("@signature-params").is_err());
        assert!(ComponentId::new("@unknown").is_err());
    }

    #[test]
    fn key_selects_a_dictionary_member() {
        let mut h = HeaderMap::new();
        h.insert("example-dict", " a=1,    b=2;x=1;y=2,   c=(a   b   c)".parse().unwrap());
        let m = req("https://example.com/", &h);
        let k = |member: &str| ComponentId::new("example-dict").unwrap().with_key(member).unwrap();
        // RFC 9421 §2.1.2 examples.
        assert_eq!(value(&k("a"), &m), ["1"]);
        assert_eq!(value(&k("b"), &m), ["2;x=1;y=2"]);
        assert_eq!(value(&k("c"), &m), ["(a b c)"]);
        assert!(matches!(k("d").values(&m), Err(SigError::ComponentMissing(_))));
    }
}
