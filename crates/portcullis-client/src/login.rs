//! A scripted user agent for Portcullis' own login and consent pages (INTERFACE.md: a login
//! form with `username` and `password`, a consent form whose buttons are named `decision`),
//! for demos, tests and load drivers that have no person at a browser. It keeps cookies, posts
//! every hidden field back (the CSRF tokens), follows the server's redirects itself and stops
//! at the redirect to the client, which it returns without following.
//!
//! This is not part of the protocol: another server's pages need their own script.

use std::collections::HashMap;

use url::Url;

use crate::ClientError;
use crate::transport::{TlsTrust, builder, error_chain};

/// At most this many pages and redirects between the authorization URL and the client.
const MAX_STEPS: usize = 12;

/// What the user agent did on the way to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadlessOutcome {
    /// The URL the server redirected to: the authorization response.
    pub callback: String,
    /// A login form was answered.
    pub signed_in: bool,
    /// A consent form was answered.
    pub consented: bool,
}

/// A cookie-keeping user agent that signs in and allows.
#[derive(Debug, Clone)]
pub struct HeadlessBrowser {
    http: reqwest::Client,
}

impl HeadlessBrowser {
    pub fn new(trust: &TlsTrust) -> Result<Self, ClientError> {
        let http = builder(trust)?
            .cookie_store(true)
            .build()
            .map_err(|e| ClientError::Usage(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http })
    }

    /// Opens `authorization_url`, signs in as `username` when the login page asks, answers the
    /// consent page with `decision` (`allow` or `deny`), and returns the redirect to
    /// `redirect_uri`.
    pub async fn authorize(
        &self,
        authorization_url: &str,
        redirect_uri: &str,
        username: &str,
        password: &str,
        decision: &str,
    ) -> Result<HeadlessOutcome, ClientError> {
        let redirect = Url::parse(redirect_uri).map_err(|e| ClientError::Usage(format!("redirect URI: {e}")))?;
        let mut outcome = HeadlessOutcome {
            callback: String::new(),
            signed_in: false,
            consented: false,
        };
        let mut url =
            Url::parse(authorization_url).map_err(|e| ClientError::Usage(format!("authorization URL: {e}")))?;
        let mut form: Option<Vec<(String, String)>> = None;
        for _ in 0..MAX_STEPS {
            let request = match form.take() {
                Some(fields) => self.http.post(url.clone()).form(&fields),
                None => self.http.get(url.clone()),
            };
            let response = request.send().await.map_err(|e| ClientError::Transport {
                url: url.to_string(),
                detail: error_chain(&e.without_url()),
            })?;
            let status = response.status().as_u16();
            if (300..400).contains(&status) {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| login_error("redirect", format!("{status} without a Location")))?;
                let next = url
                    .join(location)
                    .map_err(|e| login_error("redirect", format!("Location {location:?}: {e}")))?;
                if next.origin() == redirect.origin() && next.path() == redirect.path() {
                    outcome.callback = next.to_string();
                    return Ok(outcome);
                }
                url = next;
                continue;
            }
            let page = response.text().await.map_err(|e| ClientError::Transport {
                url: url.to_string(),
                detail: error_chain(&e.without_url()),
            })?;
            let Some(found) = Form::find(&page) else {
                return Err(login_error(
                    "authorization page",
                    format!("{status}: {}", page_message(&page)),
                ));
            };
            let mut fields = found.hidden;
            let step = if found.inputs.iter().any(|n| n == "password") {
                if outcome.signed_in || status == 401 {
                    // the login page again: the server refused the credentials
                    return Err(login_error(
                        "login",
                        format!(
                            "the server refused the credentials of {username}: {}",
                            page_message(&page)
                        ),
                    ));
                }
                fields.push(("username".into(), username.into()));
                fields.push(("password".into(), password.into()));
                outcome.signed_in = true;
                "login"
            } else if found.inputs.iter().any(|n| n == "decision") {
                if outcome.consented {
                    return Err(login_error("consent", "the consent page came back".into()));
                }
                fields.push(("decision".into(), decision.into()));
                outcome.consented = true;
                "consent"
            } else {
                return Err(login_error(
                    "authorization page",
                    format!("{status}: neither a login nor a consent form"),
                ));
            };
            url = url
                .join(&found.action)
                .map_err(|e| login_error(step, format!("form action {:?}: {e}", found.action)))?;
            form = Some(fields);
        }
        Err(login_error(
            "authorization",
            format!("no redirect to the client after {MAX_STEPS} steps"),
        ))
    }
}

fn login_error(step: &'static str, message: String) -> ClientError {
    ClientError::Login { step, message }
}

/// The first form of a page: its action, hidden fields and the names of its other controls.
#[derive(Debug, PartialEq, Eq)]
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
    inputs: Vec<String>,
}

impl Form {
    fn find(page: &str) -> Option<Self> {
        let start = page.find("<form")?;
        let end = page[start..].find("</form>").map_or(page.len(), |e| start + e);
        let body = &page[start..end];
        let (form_tag, _) = body.split_once('>')?;
        let action = attributes(form_tag).remove("action").unwrap_or_default();
        let mut hidden = Vec::new();
        let mut inputs = Vec::new();
        for tag in body.split('<').skip(1) {
            let (name, rest) = tag.split_once(|c: char| c.is_whitespace()).unwrap_or((tag, ""));
            if !matches!(name, "input" | "button" | "select" | "textarea") {
                continue;
            }
            let rest = rest.split('>').next().unwrap_or_default();
            let mut attrs = attributes(rest);
            let Some(field) = attrs.remove("name") else { continue };
            if attrs.get("type").is_some_and(|t| t.eq_ignore_ascii_case("hidden")) {
                hidden.push((field, attrs.remove("value").unwrap_or_default()));
            } else {
                inputs.push(field);
            }
        }
        Some(Self { action, hidden, inputs })
    }
}

/// `name="value"` (or single-quoted) attributes of one tag, entities decoded.
fn attributes(tag: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find('=') {
        let name = rest[..eq]
            .rsplit(|c: char| c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let Some(quote) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            rest = after;
            continue;
        };
        let Some(close) = after[1..].find(quote) else { break };
        out.insert(name, decode_entities(&after[1..1 + close]));
        rest = &after[close + 2..];
    }
    out
}

/// HTML character references as askama escapes them (named basics and numeric forms).
fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';').filter(|i| *i <= 10) else {
            out.push('&');
            rest = &tail[1..];
            continue;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message a page shows: its error paragraph, else its first heading, as plain text.
fn page_message(page: &str) -> String {
    let between = |open: &str, close: &str| -> Option<String> {
        let i = page.find(open)?;
        let after = &page[i..];
        let start = after.find('>')? + 1;
        let end = after[start..].find(close)?;
        Some(decode_entities(after[start..start + end].trim()))
    };
    between("<p class=\"error\"", "</p>")
        .or_else(|| between("<h1", "</h1>"))
        .unwrap_or_else(|| "no explanation on the page".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"<h1>Sign in</h1>
<p class="error" role="alert">The username or password is not correct.</p>
<form method="post" action="/authorize/login">
<input type="hidden" name="client_id" value="c&#x2f;1">
<input type="hidden" name="request_uri" value="urn:ietf:params:oauth:request_uri:a&amp;b">
<input type="hidden" name="csrf_token" value="t1">
<input type="text" id="username" name="username" value="alice" required autofocus>
<input type="password" id="password" name="password" required>
<button type="submit">Sign in</button>
</form>"#;

    #[test]
    fn login_form_fields_and_message() {
        let f = Form::find(LOGIN).unwrap();
        assert_eq!(f.action, "/authorize/login");
        assert_eq!(
            f.hidden,
            vec![
                ("client_id".to_owned(), "c/1".to_owned()),
                (
                    "request_uri".to_owned(),
                    "urn:ietf:params:oauth:request_uri:a&b".to_owned()
                ),
                ("csrf_token".to_owned(), "t1".to_owned()),
            ]
        );
        assert_eq!(f.inputs, vec!["username", "password"]);
        assert_eq!(page_message(LOGIN), "The username or password is not correct.");
    }

    #[test]
    fn consent_buttons_are_controls() {
        let page = r#"<form method="post" action="/consent"><input type="hidden" name="csrf_token" value="x">
<button type="submit" name="decision" value="allow">Allow</button></form>"#;
        let f = Form::find(page).unwrap();
        assert_eq!(f.inputs, vec!["decision"]);
        assert!(Form::find("<h1>Error</h1>").is_none());
        assert_eq!(page_message("<h1>Something failed</h1>"), "Something failed");
    }

    #[test]
    fn entities() {
        assert_eq!(decode_entities("a&amp;b&#39;c&#x3a;&unknown;&"), "a&b'c:&unknown;&");
    }
}
