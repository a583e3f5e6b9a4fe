//! Scopes as configuration (issue 17 item 6): each scope the server offers, with the words the
//! consent page shows for it (per language) and the user claims it releases at userinfo and in
//! the id_token. The built-in list is the default; an operator's `[[scopes]]` replaces it.

use std::collections::BTreeMap;
use std::fmt;

/// A scope name: an RFC 6749 §3.3 `scope-token`, `1*( %x21 / %x23-5B / %x5D-7E )`, bounded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ScopeToken(String);

impl ScopeToken {
    pub fn parse(name: &str) -> Result<Self, ScopeError> {
        if name.is_empty() {
            return Err(ScopeError::EmptyName);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ScopeError::NameTooLong { name: shorten(name) });
        }
        if let Some(c) = name.chars().find(|c| !is_scope_char(*c)) {
            return Err(ScopeError::NameCharacter {
                name: name.to_owned(),
                character: c,
            });
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScopeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One scope the server knows: its name, its words on the consent page (`description`, and
/// per language tag in `descriptions`), and the user claims it releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDefinition {
    pub name: ScopeToken,
    /// What the user allows, as a phrase completing "<application> would like to:".
    pub description: String,
    /// The same words in other languages, by lower-case primary language tag (`de`).
    pub descriptions: BTreeMap<String, String>,
    /// The user claims (OIDC Core §5.1 names, or the operator's own) this scope releases.
    pub claims: Vec<String>,
}

impl ScopeDefinition {
    /// A definition from configuration: every part checked.
    pub fn new(
        name: &str,
        description: &str,
        descriptions: &BTreeMap<String, String>,
        claims: &[String],
    ) -> Result<Self, ScopeError> {
        let name = ScopeToken::parse(name)?;
        check_words(&name, None, description)?;
        let mut by_language = BTreeMap::new();
        for (tag, words) in descriptions {
            if !is_language_tag(tag) {
                return Err(ScopeError::LanguageTag {
                    scope: name.0.clone(),
                    tag: shorten(tag),
                });
            }
            check_words(&name, Some(tag), words)?;
            by_language.insert(tag.to_ascii_lowercase(), words.clone());
        }
        if claims.len() > MAX_CLAIMS {
            return Err(ScopeError::TooManyClaims { scope: name.0 });
        }
        let mut checked: Vec<String> = Vec::new();
        for claim in claims {
            let ok = !claim.is_empty()
                && claim.len() <= MAX_NAME_LEN
                && claim
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
            if !ok {
                return Err(ScopeError::ClaimName {
                    scope: name.0,
                    claim: shorten(claim),
                });
            }
            // the protocol's own claims are never a scope's to release
            if RESERVED_CLAIMS.contains(&claim.as_str()) {
                return Err(ScopeError::ReservedClaim {
                    scope: name.0,
                    claim: claim.clone(),
                });
            }
            if !checked.contains(claim) {
                checked.push(claim.clone());
            }
        }
        Ok(Self {
            name,
            description: description.to_owned(),
            descriptions: by_language,
            claims: checked,
        })
    }

    /// The words for `language` (a primary language tag), else the default ones.
    pub fn words(&self, language: &str) -> &str {
        self.descriptions
            .get(language)
            .map_or(self.description.as_str(), String::as_str)
    }
}

/// A whole list of definitions: names unique, at most [`MAX_SCOPES`].
pub fn check_list(list: &[ScopeDefinition]) -> Result<(), ScopeError> {
    if list.len() > MAX_SCOPES {
        return Err(ScopeError::TooMany);
    }
    for (i, s) in list.iter().enumerate() {
        if list[..i].iter().any(|o| o.name == s.name) {
            return Err(ScopeError::Duplicate { name: s.name.0.clone() });
        }
    }
    Ok(())
}

/// Why a scope definition was refused; the configuration error names the scope.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("a scope needs a name")]
    EmptyName,
    #[error("scope name {name:?} is longer than 128 characters")]
    NameTooLong { name: String },
    #[error(
        "scope name {name:?} has the character {character:?}; RFC 6749 §3.3 allows printable ASCII except space, '\"' and '\\'"
    )]
    NameCharacter { name: String, character: char },
    #[error("scope {name:?} is defined twice")]
    Duplicate { name: String },
    #[error("at most 100 scopes")]
    TooMany,
    #[error("scope {scope:?}: description{} is empty", lang_suffix(.language))]
    EmptyDescription { scope: String, language: Option<String> },
    #[error("scope {scope:?}: description{} is longer than 200 characters", lang_suffix(.language))]
    DescriptionTooLong { scope: String, language: Option<String> },
    #[error("scope {scope:?}: description{} has a control or bidirectional formatting character", lang_suffix(.language))]
    DescriptionCharacter { scope: String, language: Option<String> },
    #[error("scope {scope:?}: {tag:?} is not a language tag (e.g. \"de\")")]
    LanguageTag { scope: String, tag: String },
    #[error("scope {scope:?}: claim {claim:?} is not a claim name (letters, digits, _ - . :)")]
    ClaimName { scope: String, claim: String },
    #[error("scope {scope:?}: claim {claim:?} belongs to the protocol and is never released by a scope")]
    ReservedClaim { scope: String, claim: String },
    #[error("scope {scope:?}: at most 50 claims")]
    TooManyClaims { scope: String },
}

/// The built-in scopes: OpenID Connect's (OIDC Core §5.4), and the demo API's `accounts` and
/// `payments`, in English and German.
pub fn builtin() -> Vec<ScopeDefinition> {
    BUILTIN
        .iter()
        .map(|(name, en, de, claims)| ScopeDefinition {
            name: ScopeToken((*name).to_owned()),
            description: (*en).to_owned(),
            descriptions: BTreeMap::from([("de".to_owned(), (*de).to_owned())]),
            claims: claims.iter().map(|c| (*c).to_owned()).collect(),
        })
        .collect()
}

/// Which claims `granted` releases under `definitions`.
pub fn releases(definitions: &[ScopeDefinition], granted: &[String], claim: &str) -> bool {
    definitions
        .iter()
        .filter(|d| granted.iter().any(|g| g == d.name.as_str()))
        .any(|d| d.claims.iter().any(|c| c == claim))
}

/// A BCP 47 language tag, as far as choosing words needs: `en`, `de-CH`, `zh-Hant-TW`.
pub fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn check_words(name: &ScopeToken, language: Option<&str>, words: &str) -> Result<(), ScopeError> {
    let scope = name.0.clone();
    let language = language.map(str::to_owned);
    if words.trim().is_empty() {
        return Err(ScopeError::EmptyDescription { scope, language });
    }
    if words.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ScopeError::DescriptionTooLong { scope, language });
    }
    if words.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        return Err(ScopeError::DescriptionCharacter { scope, language });
    }
    Ok(())
}

fn lang_suffix(language: &Option<String>) -> String {
    language.as_ref().map_or(String::new(), |l| format!(" ({l})"))
}

fn is_scope_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// Characters that reorder or hide text (as refused in client metadata, issue 13 item 11).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{2028}' | '\u{2029}')
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

const MAX_NAME_LEN: usize = 128;
const MAX_DESCRIPTION_LEN: usize = 200;
const MAX_CLAIMS: usize = 50;
/// The scope of the demo API's accounts.
pub const DEMO_API_SCOPE: &str = "accounts";

/// The scope of the demo API's payments.
pub const DEMO_API_PAYMENTS_SCOPE: &str = "payments";

/// The most scopes a server defines.
pub const MAX_SCOPES: usize = 100;

/// Claims the protocol sets itself (OIDC Core §2, §5.6.2, RFC 9068 §2.2, RFC 8693 §4.1).
const RESERVED_CLAIMS: [&str; 23] = [
    "scope",
    "at_hash",
    "c_hash",
    "s_hash",
    "sid",
    "typ",
    "act",
    "_claim_names",
    "_claim_sources",
    "sub",
    "iss",
    "aud",
    "azp",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "cnf",
    "client_id",
];

/// OIDC Core §5.4: the claims of `profile`.
const PROFILE_CLAIMS: [&str; 14] = [
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
];

type Builtin = (&'static str, &'static str, &'static str, &'static [&'static str]);

const BUILTIN: [Builtin; 6] = [
    (
        "openid",
        "confirm who you are (sign you in)",
        "bestätigen, wer Sie sind (Sie anmelden)",
        &[],
    ),
    (
        "profile",
        "see your name and basic profile",
        "Ihren Namen und Ihr Basisprofil sehen",
        &PROFILE_CLAIMS,
    ),
    (
        "email",
        "see your email address",
        "Ihre E-Mail-Adresse sehen",
        &["email", "email_verified"],
    ),
    (
        "offline_access",
        "keep access while you are not using it",
        "den Zugriff behalten, während Sie die Anwendung nicht nutzen",
        &[],
    ),
    (
        DEMO_API_SCOPE,
        "see your accounts and their balances",
        "Ihre Konten und deren Kontostände sehen",
        &[],
    ),
    (
        DEMO_API_PAYMENTS_SCOPE,
        "make payments from your accounts",
        "Zahlungen von Ihren Konten ausführen",
        &[],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        for ok in ["openid", "a:b/c", "x!#[]^~", "accounts.read"] {
            ScopeToken::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(ScopeToken::parse(""), Err(ScopeError::EmptyName));
        for (bad, c) in [("a b", ' '), ("a\"b", '"'), ("a\\b", '\\'), ("ä", 'ä'), ("a\tb", '\t')] {
            assert_eq!(
                ScopeToken::parse(bad),
                Err(ScopeError::NameCharacter {
                    name: bad.into(),
                    character: c
                })
            );
        }
        assert!(matches!(
            ScopeToken::parse(&"a".repeat(129)),
            Err(ScopeError::NameTooLong { .. })
        ));
    }

    #[test]
    fn definitions_are_checked() {
        let none = BTreeMap::new();
        let d = ScopeDefinition::new("x", "do x", &none, &["email".into(), "email".into()]).unwrap();
        assert_eq!(d.claims, vec!["email".to_owned()]);
        assert!(matches!(
            ScopeDefinition::new("x", " ", &none, &[]),
            Err(ScopeError::EmptyDescription { .. })
        ));
        assert!(matches!(
            ScopeDefinition::new("x", "a\u{202E}b", &none, &[]),
            Err(ScopeError::DescriptionCharacter { .. })
        ));
        for reserved in ["sub", "cnf", "scope", "at_hash", "sid", "_claim_sources"] {
            assert!(
                matches!(
                    ScopeDefinition::new("x", "ok", &none, &[reserved.into()]),
                    Err(ScopeError::ReservedClaim { .. })
                ),
                "{reserved}"
            );
        }
        assert!(matches!(
            ScopeDefinition::new("x", "ok", &none, &["a b".into()]),
            Err(ScopeError::ClaimName { .. })
        ));
        let de = BTreeMap::from([("DE".to_owned(), "x tun".to_owned())]);
        let d = ScopeDefinition::new("x", "do x", &de, &[]).unwrap();
        assert_eq!((d.words("de"), d.words("fr")), ("x tun", "do x"));
        let bad = BTreeMap::from([("d e".to_owned(), "x".to_owned())]);
        assert!(matches!(
            ScopeDefinition::new("x", "ok", &bad, &[]),
            Err(ScopeError::LanguageTag { .. })
        ));
        let twice = vec![d.clone(), d];
        assert_eq!(check_list(&twice), Err(ScopeError::Duplicate { name: "x".into() }));
    }

    #[test]
    fn builtins_release_the_oidc_claims() {
        let b = builtin();
        check_list(&b).unwrap();
        for d in &b {
            ScopeToken::parse(d.name.as_str()).unwrap();
        }
        assert!(releases(&b, &["profile".into()], "name"));
        assert!(!releases(&b, &["email".into()], "name"));
        assert!(releases(&b, &["email".into()], "email_verified"));
        assert!(!releases(&b, &["openid".into()], "email"));
    }
}
