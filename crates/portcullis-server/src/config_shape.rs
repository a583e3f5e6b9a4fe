//! The shape of the configuration: which sections and keys exist and what type each value has,
//! read off the defaults. A value of the wrong type, from the file or from a `PORTCULLIS_*`
//! variable, is refused in one line that names the key, where it came from and the type
//! expected (issue 17): `tokens.code_lifetime (in portcullis.toml): expected an integer, got
//! "60s"`. Values of the right type are then checked for their meaning by `Config::validate`.

use std::net::SocketAddr;

/// What a setting's value must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Integer,
    /// A non-negative integer (a count).
    Count,
    Boolean,
    Text,
    /// A socket address, `host:port`.
    Address,
    /// A list of strings; from the environment, one comma-separated string.
    List,
    /// A list of tables (`[[branding.footer_links]]`); in the file only.
    Tables,
    /// A table of strings (`descriptions = { de = "..." }`).
    Words,
}

/// Settings whose type the default's TOML form does not tell: addresses are written as
/// strings, counts as integers.
const SPECIAL: [(&str, &str, Kind); 5] = [
    ("server", "listen", Kind::Address),
    ("server", "mtls_listen", Kind::Address),
    ("server", "management_listen", Kind::Address),
    ("limits", "max_form_params", Kind::Count),
    ("branding", "footer_links", Kind::Tables),
];

/// A section that is a list of tables: its name, each entry's keys, how many of the first
/// keys are required.
type ListSection = (&'static str, &'static [(&'static str, Kind)], usize);

/// Sections that are lists of tables (`[[scopes]]`).
const LIST_SECTIONS: [ListSection; 1] = [(
    "scopes",
    &[
        ("name", Kind::Text),
        ("description", Kind::Text),
        ("descriptions", Kind::Words),
        ("claims", Kind::List),
    ],
    2,
)];

impl Kind {
    fn expected(self) -> &'static str {
        match self {
            Kind::Integer => "an integer",
            Kind::Count => "a non-negative integer",
            Kind::Boolean => "true or false",
            Kind::Text => "a string",
            Kind::Address => "an address like 127.0.0.1:8443",
            Kind::List => "a list of strings",
            Kind::Tables => "a list of tables (in the configuration file only)",
            Kind::Words => "a table of strings",
        }
    }

    /// Whether a value from the file has this kind.
    fn accepts(self, v: &toml::Value) -> bool {
        match (self, v) {
            (Kind::Integer, toml::Value::Integer(_)) => true,
            (Kind::Count, toml::Value::Integer(i)) => *i >= 0,
            (Kind::Boolean, toml::Value::Boolean(_)) => true,
            (Kind::Text, toml::Value::String(_)) => true,
            (Kind::Address, toml::Value::String(s)) => s.parse::<SocketAddr>().is_ok(),
            // one string is a comma-separated list, as from the environment
            (Kind::List, toml::Value::String(_)) => true,
            (Kind::List, toml::Value::Array(a)) => a.iter().all(toml::Value::is_str),
            (Kind::Tables, toml::Value::Array(a)) => a.iter().all(toml::Value::is_table),
            (Kind::Words, toml::Value::Table(t)) => t.values().all(toml::Value::is_str),
            _ => false,
        }
    }

    /// The value an environment variable's text stands for, if it has this kind.
    fn parse_env(self, raw: &str) -> Option<toml::Value> {
        let value = match self {
            Kind::Integer | Kind::Count => toml::Value::Integer(raw.trim().parse().ok()?),
            Kind::Boolean => toml::Value::Boolean(raw.trim().parse().ok()?),
            Kind::Text | Kind::Address | Kind::List => toml::Value::String(raw.to_owned()),
            Kind::Tables | Kind::Words => return None,
        };
        self.accepts(&value).then_some(value)
    }
}

/// Where a value came from, as a message names it.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    File(&'a str),
    Env(&'a str),
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(path) => write!(f, "in {path}"),
            Source::Env(var) => write!(f, "from {var}"),
        }
    }
}

/// The sections and keys of the configuration with the kind of each, from the defaults.
pub struct Shape {
    sections: Vec<(String, Vec<(String, Kind)>)>,
}

impl Shape {
    /// `defaults` is the default configuration as TOML: a table of section tables.
    pub fn new(defaults: &toml::Table) -> Self {
        let sections = defaults
            .iter()
            .map(|(section, keys)| {
                let keys = keys
                    .as_table()
                    .map(|t| {
                        t.iter()
                            .map(|(key, default)| (key.clone(), kind_of(section, key, default)))
                            .collect()
                    })
                    .unwrap_or_default();
                (section.clone(), keys)
            })
            .collect();
        Self { sections }
    }

    /// Checks every section, key and value type of a configuration file.
    pub fn check_file(&self, table: &toml::Table, path: &str) -> Result<(), String> {
        let source = Source::File(path);
        for (section, value) in table {
            if let Some((_, keys, required)) = LIST_SECTIONS.iter().find(|(s, _, _)| s == section) {
                check_list_section(section, keys, *required, value, source)?;
                continue;
            }
            let Some(keys) = self.section(section) else {
                return Err(format!(
                    "[{section}] ({source}): unknown section; the sections are {}",
                    self.sections
                        .iter()
                        .map(|(s, _)| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            let Some(values) = value.as_table() else {
                return Err(format!(
                    "{section} ({source}): expected a section ([{section}]), got {}",
                    shown(value)
                ));
            };
            for (key, value) in values {
                let kind = Self::kind(section, keys, key, source)?;
                if !kind.accepts(value) {
                    return Err(type_error(section, key, source, kind, &shown(value)));
                }
            }
        }
        Ok(())
    }

    /// The typed value of `PORTCULLIS_<SECTION>_<KEY>`, or a message naming the variable.
    pub fn env_value(&self, section: &str, key: &str, var: &str, raw: &str) -> Result<toml::Value, String> {
        let source = Source::Env(var);
        let keys = self
            .section(section)
            .ok_or_else(|| format!("[{section}] ({source}): unknown section"))?;
        let kind = Self::kind(section, keys, key, source)?;
        kind.parse_env(raw)
            .ok_or_else(|| type_error(section, key, source, kind, &shown(&toml::Value::String(raw.to_owned()))))
    }

    fn section(&self, name: &str) -> Option<&[(String, Kind)]> {
        self.sections
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, keys)| keys.as_slice())
    }

    fn kind(section: &str, keys: &[(String, Kind)], key: &str, source: Source<'_>) -> Result<Kind, String> {
        keys.iter()
            .find(|(k, _)| k == key)
            .map(|(_, kind)| *kind)
            .ok_or_else(|| {
                format!(
                    "{section}.{key} ({source}): unknown setting; the [{section}] settings are {}",
                    keys.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
    }
}

/// `[[section]]` entries: tables of known keys of the right kinds, the required ones present.
fn check_list_section(
    section: &str,
    keys: &[(&str, Kind)],
    required: usize,
    value: &toml::Value,
    source: Source<'_>,
) -> Result<(), String> {
    let entries = value
        .as_array()
        .filter(|a| a.iter().all(toml::Value::is_table))
        .ok_or_else(|| {
            format!(
                "{section} ({source}): expected a list of tables ([[{section}]]), got {}",
                shown(value)
            )
        })?;
    for (i, entry) in entries.iter().enumerate() {
        let Some(entry) = entry.as_table() else {
            continue;
        };
        for (key, value) in entry {
            let Some((_, kind)) = keys.iter().find(|(k, _)| k == key) else {
                return Err(format!(
                    "{section}[{i}].{key} ({source}): unknown setting; a [[{section}]] entry has {}",
                    keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ));
            };
            if !kind.accepts(value) {
                return Err(type_error(
                    &format!("{section}[{i}]"),
                    key,
                    source,
                    *kind,
                    &shown(value),
                ));
            }
        }
        if let Some((missing, _)) = keys[..required].iter().find(|(k, _)| !entry.contains_key(*k)) {
            return Err(format!("{section}[{i}] ({source}): {missing} is required"));
        }
    }
    Ok(())
}

fn kind_of(section: &str, key: &str, default: &toml::Value) -> Kind {
    if let Some((_, _, kind)) = SPECIAL.iter().find(|(s, k, _)| *s == section && *k == key) {
        return *kind;
    }
    match default {
        toml::Value::Integer(_) => Kind::Integer,
        toml::Value::Boolean(_) => Kind::Boolean,
        toml::Value::Array(_) => Kind::List,
        _ => Kind::Text,
    }
}

fn type_error(section: &str, key: &str, source: Source<'_>, kind: Kind, got: &str) -> String {
    format!("{section}.{key} ({source}): expected {}, got {got}", kind.expected())
}

/// A value as the operator wrote it, cut short if long.
fn shown(v: &toml::Value) -> String {
    let text = match v {
        toml::Value::Table(_) => return "a table".into(),
        other => other.to_string(),
    };
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        let defaults: toml::Table = toml::from_str(
            "[server]\nlisten = \"127.0.0.1:1\"\nissuer = \"x\"\nmax = 5\n[limits]\nmax_form_params = 1\n\
             [log]\nlevel = \"info\"\nflag = true\nhosts = []\n",
        )
        .unwrap();
        Shape::new(&defaults)
    }

    #[test]
    fn file_types_are_checked_by_key() {
        let s = shape();
        let check = |text: &str| s.check_file(&toml::from_str(text).unwrap(), "p.toml");
        assert_eq!(check("[server]\nmax = 3\nlisten = \"[::1]:9\"\n"), Ok(()));
        assert_eq!(
            check("[server]\nmax = \"60s\"\n").unwrap_err(),
            "server.max (in p.toml): expected an integer, got \"60s\""
        );
        assert_eq!(
            check("[server]\nlisten = \"abc\"\n").unwrap_err(),
            "server.listen (in p.toml): expected an address like 127.0.0.1:8443, got \"abc\""
        );
        assert_eq!(
            check("[limits]\nmax_form_params = -1\n").unwrap_err(),
            "limits.max_form_params (in p.toml): expected a non-negative integer, got -1"
        );
        assert_eq!(
            check("[log]\nflag = \"yes\"\n").unwrap_err(),
            "log.flag (in p.toml): expected true or false, got \"yes\""
        );
        assert!(check("[log]\nhosts = \"a,b\"\n").is_ok());
        assert!(check("[log]\nhosts = [\"a\"]\n").is_ok());
        assert!(check("[log]\nhosts = [1]\n").unwrap_err().contains("a list of strings"));
        let e = check("[server]\nnope = 1\n").unwrap_err();
        assert!(e.starts_with("server.nope (in p.toml): unknown setting"), "{e}");
        assert!(e.contains("issuer"), "{e}");
        let e = check("[bogus]\nx = 1\n").unwrap_err();
        assert!(e.starts_with("[bogus] (in p.toml): unknown section"), "{e}");
        let e = check("server = 5\n").unwrap_err();
        assert_eq!(e, "server (in p.toml): expected a section ([server]), got 5");
    }

    #[test]
    fn environment_values_are_typed_by_key() {
        let s = shape();
        let v = |key, raw| s.env_value("server", key, "PORTCULLIS_SERVER_X", raw);
        assert_eq!(v("max", "30"), Ok(toml::Value::Integer(30)));
        // a string setting keeps text that looks like a number
        assert_eq!(v("issuer", "123"), Ok(toml::Value::String("123".into())));
        assert_eq!(
            v("max", "60s").unwrap_err(),
            "server.max (from PORTCULLIS_SERVER_X): expected an integer, got \"60s\""
        );
        assert!(v("listen", "nowhere").unwrap_err().contains("expected an address"));
        assert!(v("nope", "1").unwrap_err().contains("unknown setting"));
        let long = "x".repeat(100);
        let e = s.env_value("log", "flag", "V", &long).unwrap_err();
        assert!(e.ends_with("...") && e.len() < 150, "{e}");
    }
}
