//! Mutations: generic byte edits, JSON-structure edits, base64url segment re-encoding for JWS
//! inputs and form-body edits. No coverage feedback: the runner keeps inputs that produce an
//! outcome it has not seen before.

use portcullis_jose::{b64url, b64url_decode};
use serde_json::{Map, Value, json};

/// SplitMix64: small, fast, deterministic for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The longest input the mutators produce.
pub const MAX_INPUT: usize = 64 * 1024;

const TOKENS: &[&str] = &[
    ".",
    "..",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "=",
    "==",
    "&",
    "%",
    "%00",
    "%ff",
    "+",
    "-",
    "_",
    "/",
    "\\",
    "\\u0000",
    "\\ud800",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "null",
    "true",
    "AA",
    "AAAA",
    "\u{202E}",
    "\u{2066}",
    "\u{0}",
    "\n",
    "\r\n",
    "\u{ff}",
    "é",
    "https://",
    "javascript:",
    "#",
    "?",
    " ",
];

/// Member names worth adding to JSON objects and forms.
pub const NAMES: &[&str] = &[
    "alg",
    "typ",
    "kid",
    "jwk",
    "crit",
    "kty",
    "crv",
    "x",
    "y",
    "n",
    "e",
    "d",
    "k",
    "use",
    "keys",
    "jti",
    "htm",
    "htu",
    "iat",
    "ath",
    "nonce",
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "redirect_uris",
    "client_name",
    "jwks",
    "jwks_uri",
    "logo_uri",
    "client_uri",
    "policy_uri",
    "tos_uri",
    "contacts",
    "scope",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "software_id",
    "tls_client_auth_subject_dn",
    "dpop_bound_access_tokens",
    "client_id",
    "client_assertion",
    "client_assertion_type",
    "response_type",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "state",
    "request_uri",
    "request",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
    "authorization_details",
    "resource",
];

fn interesting_value(rng: &mut Rng) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(0),
        3 => json!(-1),
        4 => json!(i64::MAX),
        5 => json!(u64::MAX),
        6 => json!(1e308),
        7 => json!(-0.5),
        8 => json!(""),
        9 => json!("A".repeat(rng.below(5000))),
        10 => json!([]),
        11 => json!({}),
        12 => json!(rng.pick(TOKENS)),
        13 => json!(rng.pick(NAMES)),
        14 => {
            let mut v = json!(1);
            for _ in 0..rng.below(140) {
                v = json!([v]);
            }
            v
        }
        _ => json!(["a", 1, null]),
    }
}

/// Generic byte-level edits.
pub fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                data.insert(i, rng.next_u64() as u8);
            }
            3 => {
                let i = rng.below(len + 1);
                let t = rng.pick(TOKENS).as_bytes();
                data.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                data.drain(start..end);
            }
            5 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let chunk = data[start..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, chunk);
            }
            6 if !corpus.is_empty() => {
                let other = rng.pick(corpus);
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(256)).min(other.len());
                    let at = rng.below(len + 1);
                    let cut = (at + rng.below(32)).min(len);
                    data.splice(at..cut, other[from..to].iter().copied());
                }
            }
            7 if len > 0 => data.truncate(rng.below(len)),
            8 if len > 0 => {
                let i = rng.below(len);
                data[i] = *rng.pick(b".\"{}[],:=&%+-_/\\0Aa \n");
            }
            _ => {
                // repeat a byte many times (lengths, big numbers)
                let b = if len > 0 { data[rng.below(len)] } else { b'A' };
                let at = rng.below(len + 1);
                let n = 1 + rng.below(300);
                data.splice(at..at, std::iter::repeat_n(b, n));
            }
        }
    }
    data.truncate(MAX_INPUT);
}

/// Edits one node of a JSON document.
pub fn mutate_json(value: &mut Value, rng: &mut Rng) {
    let depth = rng.below(4);
    mutate_json_at(value, rng, depth);
}

fn mutate_json_at(node: &mut Value, rng: &mut Rng, depth: usize) {
    if depth > 0 {
        match node {
            Value::Object(m) if !m.is_empty() => {
                let i = rng.below(m.len());
                if let Some(child) = m.values_mut().nth(i) {
                    return mutate_json_at(child, rng, depth - 1);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                return mutate_json_at(&mut a[i], rng, depth - 1);
            }
            _ => {}
        }
    }
    match node {
        Value::Object(m) => mutate_object(m, rng),
        Value::Array(a) => match rng.below(4) {
            0 if !a.is_empty() => {
                let i = rng.below(a.len());
                a.remove(i);
            }
            1 if !a.is_empty() => {
                let v = a[rng.below(a.len())].clone();
                for _ in 0..1 + rng.below(20) {
                    a.push(v.clone());
                }
            }
            _ => a.push(interesting_value(rng)),
        },
        Value::String(s) => mutate_string(s, rng),
        other => *other = interesting_value(rng),
    }
}

fn mutate_object(m: &mut Map<String, Value>, rng: &mut Rng) {
    match rng.below(4) {
        0 if !m.is_empty() => {
            let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
            m.remove(&k);
        }
        1 if !m.is_empty() => {
            let k = m.keys().nth(rng.below(m.len())).cloned().unwrap_or_default();
            m.insert(k, interesting_value(rng));
        }
        _ => {
            let v = if rng.chance(2) {
                interesting_value(rng)
            } else {
                m.values()
                    .nth(rng.below(m.len().max(1)))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            m.insert((*rng.pick(NAMES)).to_owned(), v);
        }
    }
}

/// Edits a string; base64url strings are often edited as bytes and re-encoded, or given a
/// non-canonical encoding of the same bytes.
pub fn mutate_string(s: &mut String, rng: &mut Rng) {
    if let Ok(mut bytes) = b64url_decode(s)
        && !s.is_empty()
        && rng.chance(2)
    {
        match rng.below(5) {
            0 => bytes.insert(0, 0),
            1 => {
                *s = dirty_base64(s, rng);
                return;
            }
            2 => s.push('='),
            _ => mutate_bytes(&mut bytes, rng, &[]),
        }
        if !s.ends_with('=') {
            *s = b64url(&bytes);
        }
        return;
    }
    let mut bytes = s.clone().into_bytes();
    mutate_bytes(&mut bytes, rng, &[]);
    *s = String::from_utf8_lossy(&bytes).into_owned();
}

/// The same bytes with the unused low bits of the last character set (if it has any).
pub fn dirty_base64(s: &str, rng: &mut Rng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let Some(last) = s.bytes().last() else {
        return s.to_owned();
    };
    let Some(i) = ALPHABET.iter().position(|c| *c == last) else {
        return s.to_owned();
    };
    let unused = match s.len() % 4 {
        2 => 4,
        3 => 2,
        _ => return format!("{s}="),
    };
    let dirty = (i & !((1 << unused) - 1)) | (1 + rng.below((1 << unused) - 1));
    format!("{}{}", &s[..s.len() - 1], ALPHABET[dirty] as char)
}

/// Byte mutations most of the time; JSON-structure mutations when the input is JSON.
pub fn mutate_json_input(data: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.chance(3)
        && let Ok(mut v) = serde_json::from_slice::<Value>(data)
    {
        for _ in 0..1 + rng.below(3) {
            mutate_json(&mut v, rng);
        }
        return serde_json::to_vec(&v).unwrap_or_default();
    }
    let mut out = data.to_vec();
    mutate_bytes(&mut out, rng, corpus);
    out
}

/// A JWS split into its decoded JSON header and payload, for structure-aware mutation.
pub struct JwsParts {
    pub header: Value,
    pub payload: Value,
    pub signature: String,
}

impl JwsParts {
    pub fn split(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Self {
            header: serde_json::from_slice(&b64url_decode(h).ok()?).ok()?,
            payload: serde_json::from_slice(&b64url_decode(p).ok()?).ok()?,
            signature: s.to_owned(),
        })
    }

    pub fn signing_input(&self) -> String {
        format!(
            "{}.{}",
            b64url(serde_json::to_vec(&self.header).unwrap_or_default()),
            b64url(serde_json::to_vec(&self.payload).unwrap_or_default())
        )
    }
}

/// JWS mutations: edit the decoded header or payload JSON and re-encode, then either keep the
/// old signature or re-sign with `sign` (so the checks after signature verification are reached);
/// or edit one base64url segment or the raw token.
pub fn mutate_jws(
    data: &[u8],
    rng: &mut Rng,
    corpus: &[Vec<u8>],
    sign: &dyn Fn(&JwsParts) -> Option<String>,
) -> Vec<u8> {
    let token = String::from_utf8_lossy(data);
    if !rng.chance(4)
        && let Some(mut parts) = JwsParts::split(&token)
    {
        match rng.below(3) {
            0 => mutate_json(&mut parts.header, rng),
            _ => mutate_json(&mut parts.payload, rng),
        }
        if rng.chance(3)
            && let Value::Object(claims) = &mut parts.payload
        {
            // a fresh jti, so replay checks do not end every re-signed input
            claims.insert("jti".into(), json!(format!("fuzz-{}", rng.next_u64())));
        }
        let input = parts.signing_input();
        if !rng.chance(4)
            && let Some(sig) = sign(&parts)
        {
            return format!("{input}.{sig}").into_bytes();
        }
        return format!("{input}.{}", parts.signature).into_bytes();
    }
    let segments: Vec<&str> = token.split('.').collect();
    if segments.len() == 3 && rng.chance(2) {
        let i = rng.below(3);
        let mut segs: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
        match rng.below(3) {
            0 => segs[i] = dirty_base64(&segs[i], rng),
            1 => segs[i].push('='),
            _ => {
                if let Ok(mut bytes) = b64url_decode(&segs[i]) {
                    mutate_bytes(&mut bytes, rng, corpus);
                    segs[i] = b64url(&bytes);
                }
            }
        }
        return segs.join(".").into_bytes();
    }
    let mut out = data.to_vec();
    mutate_bytes(&mut out, rng, corpus);
    out
}

/// Form mutations: edit, add, remove or duplicate a pair and re-encode, or edit the raw bytes.
pub fn mutate_form(data: &[u8], rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    if rng.chance(4) {
        let mut out = data.to_vec();
        mutate_bytes(&mut out, rng, corpus);
        return out;
    }
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    match rng.below(6) {
        0 if !pairs.is_empty() => {
            let i = rng.below(pairs.len());
            pairs.remove(i);
        }
        1 if !pairs.is_empty() => {
            let p = pairs[rng.below(pairs.len())].clone();
            pairs.push(p);
        }
        2 if !pairs.is_empty() => {
            let i = rng.below(pairs.len());
            mutate_string(&mut pairs[i].0, rng);
        }
        3 => {
            let v = match rng.below(3) {
                0 => String::new(),
                1 => (*rng.pick(TOKENS)).to_owned(),
                _ => "@sign".to_owned(),
            };
            pairs.push(((*rng.pick(NAMES)).to_owned(), v));
        }
        _ if !pairs.is_empty() => {
            let i = rng.below(pairs.len());
            if rng.chance(5) {
                pairs[i].1 = (*rng.pick(TOKENS)).to_owned();
            } else {
                mutate_string(&mut pairs[i].1, rng);
            }
        }
        _ => pairs.push(("scope".into(), "openid".into())),
    }
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &pairs {
        ser.append_pair(k, v);
    }
    ser.finish().into_bytes()
}
