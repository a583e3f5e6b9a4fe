//! Pages a bank can put its name on (issue 17 item 8): the operator's name, logo, colours and
//! footer links, and page templates overridden from a directory.
//!
//! Every page renders through minijinja, built-in templates and overrides alike, so that an
//! operator copies a built-in template (`crates/portcullis-server/templates/`) and edits it in
//! the same syntax; askama's compiled templates could not be replaced at run time. Every value
//! is HTML-escaped in every template, whatever its file name; nothing the operator configures
//! reaches a page unchecked (colours are hex, links https).

use std::path::Path;

use minijinja::{AutoEscape, Environment};
use serde::Serialize;

use serde::Deserialize;

/// The pages' look (issue 17 item 8). Every value is checked at start; the pages' security
/// headers do not change with it (a logo adds only `img-src 'self'`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrandingConfig {
    /// The name shown in page titles and headers. Default `Portcullis`.
    pub name: String,
    /// A PNG, JPEG, WebP or SVG file (at most 256 KiB) read at start and served by the server
    /// itself at `/branding/logo`. Empty: no logo.
    pub logo_file: String,
    /// Buttons, links and the focus ring: `#rgb` or `#rrggbb`, with a contrast of at least
    /// 4.5:1 against `background_color`. Default `#1d4ed8`.
    pub primary_color: String,
    /// The page background, `#rgb` or `#rrggbb`. Default `#ffffff`.
    pub background_color: String,
    /// Links in every page's footer (`[[branding.footer_links]]` with `label` and an https
    /// `url`), at most 10; in the file only.
    pub footer_links: Vec<FooterLink>,
    /// A directory of page templates (minijinja syntax, HTML-escaped): a file with the name of
    /// a built-in template (`base.html`, `login.html`, `consent.html`, `error.html`,
    /// `logout.html`, `signed-out.html`) replaces it. Empty: the built-in templates.
    pub template_dir: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FooterLink {
    pub label: String,
    pub url: String,
}

impl Default for BrandingConfig {
    fn default() -> Self {
        Self {
            name: "Portcullis".into(),
            logo_file: String::new(),
            primary_color: "#1d4ed8".into(),
            background_color: "#ffffff".into(),
            footer_links: Vec::new(),
            template_dir: String::new(),
        }
    }
}

/// The built-in templates; a file of the same name in `branding.template_dir` replaces one.
pub const TEMPLATES: [(&str, &str); 6] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("logout.html", include_str!("../templates/logout.html")),
    ("signed-out.html", include_str!("../templates/signed-out.html")),
];

/// The logo's path under the issuer's.
pub const LOGO_PATH: &str = "/branding/logo";

const MAX_LOGO_BYTES: u64 = 256 * 1024;
const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;
const MAX_TEMPLATE_FILES: usize = 50;
const MAX_FOOTER_LINKS: usize = 10;
/// WCAG 2.1 SC 1.4.3: text needs 4.5:1 against its background.
const MIN_CONTRAST: f64 = 4.5;
/// The text colour of the pages.
const TEXT_COLOR: Rgb = Rgb(0x1b, 0x1b, 0x1b);

/// The checks of `[branding]` that need no file: run when the configuration is loaded.
pub fn validate(b: &BrandingConfig) -> Result<(), String> {
    check_text("branding.name", &b.name, 100)?;
    let primary = Rgb::parse(&b.primary_color).ok_or_else(|| {
        format!(
            "branding.primary_color: {:?} is not a colour like #1d4ed8",
            b.primary_color
        )
    })?;
    let background = Rgb::parse(&b.background_color).ok_or_else(|| {
        format!(
            "branding.background_color: {:?} is not a colour like #ffffff",
            b.background_color
        )
    })?;
    // accessible by construction: text and links must stay readable (WCAG 2.1 SC 1.4.3)
    let links = primary.contrast(background);
    if links < MIN_CONTRAST {
        return Err(format!(
            "branding.primary_color: {} on {} has a contrast of {links:.1}:1; links and buttons need at least {MIN_CONTRAST}:1",
            b.primary_color, b.background_color
        ));
    }
    let text = TEXT_COLOR.contrast(background);
    if text < MIN_CONTRAST {
        return Err(format!(
            "branding.background_color: the text colour #1b1b1b on {} has a contrast of {text:.1}:1; it needs at least {MIN_CONTRAST}:1",
            b.background_color
        ));
    }
    if b.footer_links.len() > MAX_FOOTER_LINKS {
        return Err(format!("branding.footer_links: at most {MAX_FOOTER_LINKS} links"));
    }
    for (i, l) in b.footer_links.iter().enumerate() {
        check_text(&format!("branding.footer_links[{i}].label"), &l.label, 100)?;
        if !is_https_url(&l.url) {
            return Err(format!(
                "branding.footer_links[{i}].url: {:?} is not an absolute https URL",
                l.url.chars().take(60).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// The pages' templates and the operator's branding, loaded once at start.
pub struct Ui {
    env: Environment<'static>,
    brand: Brand,
    logo: Option<Logo>,
}

/// The branding as templates see it (`brand.name`, `brand.logo_url`, `brand.footer_links`).
#[derive(Debug, Clone, Serialize)]
pub struct Brand {
    pub name: String,
    pub logo_url: Option<String>,
    pub primary_color: String,
    pub background_color: String,
    /// Black or white, whichever reads better on `primary_color` (button text).
    pub on_primary_color: String,
    pub footer_links: Vec<Link>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub label: String,
    pub url: String,
}

/// The logo file and its media type.
pub struct Logo {
    /// Shared with every response (no copy per request).
    pub bytes: axum::body::Bytes,
    pub content_type: &'static str,
}

/// Sample values for a page template (the pages' own, `pages::sample_context`).
pub type SampleContext = fn(&Ui, &str) -> minijinja::Value;

impl Ui {
    /// Reads the logo and the override templates; every template must compile, and every page
    /// must render with the values `sample` gives for it, or the server does not start.
    pub fn load(b: &BrandingConfig, base_path: &str, sample: SampleContext) -> Result<Self, String> {
        validate(b)?;
        let mut env = Environment::new();
        // escaping on for every template, whatever its name (an override cannot turn it off
        // by naming a file .txt)
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.set_formatter(escape_html);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|e| format!("built-in template {name}: {e}"))?;
        }
        if !b.template_dir.is_empty() {
            load_overrides(&mut env, Path::new(&b.template_dir))?;
        }
        let logo = if b.logo_file.is_empty() {
            None
        } else {
            Some(load_logo(Path::new(&b.logo_file))?)
        };
        let primary = Rgb::parse(&b.primary_color).unwrap_or(Rgb(0x1d, 0x4e, 0xd8));
        let on_primary = if primary.contrast(Rgb(255, 255, 255)) >= primary.contrast(Rgb(0, 0, 0)) {
            "#ffffff"
        } else {
            "#000000"
        };
        let brand = Brand {
            name: b.name.clone(),
            logo_url: logo.as_ref().map(|_| format!("{base_path}{LOGO_PATH}")),
            primary_color: b.primary_color.to_ascii_lowercase(),
            background_color: b.background_color.to_ascii_lowercase(),
            on_primary_color: on_primary.into(),
            footer_links: b
                .footer_links
                .iter()
                .map(|l| Link {
                    label: l.label.clone(),
                    url: l.url.clone(),
                })
                .collect(),
        };
        let ui = Self { env, brand, logo };
        ui.trial_render(sample)?;
        Ok(ui)
    }

    pub fn brand(&self) -> &Brand {
        &self.brand
    }

    pub fn logo(&self) -> Option<&Logo> {
        self.logo.as_ref()
    }

    /// Renders a page template with `context` (already holding `brand`, `t` and `lang`).
    pub fn render(&self, name: &str, context: minijinja::Value) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }

    /// Each page once with sample values: an override that fails at render time (an unknown
    /// filter, a wrong call) stops the start instead of every sign-in.
    fn trial_render(&self, sample: SampleContext) -> Result<(), String> {
        for (name, _) in TEMPLATES {
            let ctx = sample(self, name);
            self.render(name, ctx)
                .map_err(|e| format!("branding.template_dir: {name} does not render: {e:#}"))?;
        }
        Ok(())
    }
}

/// Writes a value HTML-escaped (`& < > " '`, as askama did, so that pages parse the same for
/// the tools that read them); `none` and undefined values write nothing. A value marked safe
/// (`|safe` in an operator's template) is written as it is.
fn escape_html(
    out: &mut minijinja::Output,
    state: &minijinja::State,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let text = value.to_string();
    let raw = value.is_safe() || matches!(state.auto_escape(), AutoEscape::None);
    let written = if raw {
        out.write_str(&text)
    } else {
        let mut escaped = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                c => escaped.push(c),
            }
        }
        out.write_str(&escaped)
    };
    written
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write the page").with_source(e))
}

fn load_overrides(env: &mut Environment<'static>, dir: &Path) -> Result<(), String> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("branding.template_dir {shown}: {e}"))?;
    let mut count = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("branding.template_dir {shown}: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".html") || name.starts_with('.') {
            continue;
        }
        count += 1;
        if count > MAX_TEMPLATE_FILES {
            return Err(format!(
                "branding.template_dir {shown}: more than {MAX_TEMPLATE_FILES} templates"
            ));
        }
        let path = entry.path();
        // review round 2, L8: the file itself, never where a link points (a template linked to
        // the key-encryption key would print it on every page)
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("branding.template_dir {}: {e}", path.display()))?;
        if meta.file_type().is_symlink() {
            return Err(format!(
                "branding.template_dir {}: is a symbolic link; copy the template into the directory",
                path.display()
            ));
        }
        if !meta.is_file() {
            continue;
        }
        if meta.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "branding.template_dir {}: larger than {MAX_TEMPLATE_BYTES} bytes",
                path.display()
            ));
        }
        let source =
            std::fs::read_to_string(&path).map_err(|e| format!("branding.template_dir {}: {e}", path.display()))?;
        env.add_template_owned(name.clone(), source)
            .map_err(|e| format!("branding.template_dir {}: {e:#}", path.display()))?;
        if TEMPLATES.iter().any(|(n, _)| *n == name) {
            tracing::info!(template = %name, dir = %shown, "page template overridden");
        }
    }
    Ok(())
}

fn load_logo(path: &Path) -> Result<Logo, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("branding.logo_file {shown}: {e}"))?;
    if !meta.is_file() || meta.len() > MAX_LOGO_BYTES {
        return Err(format!(
            "branding.logo_file {shown}: must be a file of at most {MAX_LOGO_BYTES} bytes"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("branding.logo_file {shown}: {e}"))?;
    let content_type =
        sniff_image(&bytes).ok_or_else(|| format!("branding.logo_file {shown}: not a PNG, JPEG, WebP or SVG image"))?;
    Ok(Logo {
        bytes: bytes.into(),
        content_type,
    })
}

/// The media type of an image by its first bytes (the file name is not trusted).
fn sniff_image(b: &[u8]) -> Option<&'static str> {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if b.starts_with(&[0xff, 0xd8, 0xff]) {
        return Some("image/jpeg");
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    let head = std::str::from_utf8(&b[..b.len().min(1024)])
        .ok()?
        .trim_start_matches('\u{feff}');
    let head = head.trim_start();
    if head.starts_with("<svg") || (head.starts_with("<?xml") && head.contains("<svg")) {
        return Some("image/svg+xml");
    }
    None
}

fn check_text(key: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{key} must not be empty"));
    }
    if value.chars().count() > max {
        return Err(format!("{key} is longer than {max} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{2028}' | '\u{2029}'))
    {
        return Err(format!("{key} has a control or bidirectional formatting character"));
    }
    Ok(())
}

fn is_https_url(s: &str) -> bool {
    s.len() <= 2048
        && s.bytes().all(|b| b.is_ascii_graphic())
        && url::Url::parse(s).is_ok_and(|u| u.scheme() == "https" && u.host().is_some() && u.username().is_empty())
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rgb(u8, u8, u8);

impl Rgb {
    /// `#rgb` or `#rrggbb`, nothing else (the value goes into the pages' CSS).
    fn parse(s: &str) -> Option<Self> {
        let hex = s.strip_prefix('#')?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let d = |i: usize, n: usize| u8::from_str_radix(&hex[i..i + n], 16).ok();
        match hex.len() {
            3 => Some(Self(d(0, 1)? * 17, d(1, 1)? * 17, d(2, 1)? * 17)),
            6 => Some(Self(d(0, 2)?, d(2, 2)?, d(4, 2)?)),
            _ => None,
        }
    }

    /// WCAG 2.1 relative luminance.
    fn luminance(self) -> f64 {
        let c = |v: u8| {
            let v = f64::from(v) / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * c(self.0) + 0.7152 * c(self.1) + 0.0722 * c(self.2)
    }

    /// WCAG 2.1 contrast ratio, 1 to 21.
    fn contrast(self, other: Self) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        (a.max(b) + 0.05) / (a.min(b) + 0.05)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review round 2, L8: an override that is a symbolic link (to the key-encryption key, say)
    /// stops the start instead of being shown on every page.
    #[cfg(unix)]
    #[test]
    fn template_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("keys.key");
        std::fs::write(&secret, "c2VjcmV0").unwrap();
        let templates = dir.path().join("templates");
        std::fs::create_dir(&templates).unwrap();
        std::os::unix::fs::symlink(&secret, templates.join("error.html")).unwrap();
        let b = BrandingConfig {
            template_dir: templates.display().to_string(),
            ..BrandingConfig::default()
        };
        let e = Ui::load(&b, "", crate::pages::sample_context).err().unwrap();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(!e.contains("c2VjcmV0"));
    }

    #[test]
    fn colours_are_hex_only() {
        assert_eq!(Rgb::parse("#fff"), Some(Rgb(255, 255, 255)));
        assert_eq!(Rgb::parse("#1D4ED8"), Some(Rgb(0x1d, 0x4e, 0xd8)));
        for bad in ["fff", "#ffff", "#ggg", "red", "#fff;}", "#fff\n", "", "#"] {
            assert_eq!(Rgb::parse(bad), None, "{bad}");
        }
        let white = Rgb(255, 255, 255);
        assert!((Rgb(0, 0, 0).contrast(white) - 21.0).abs() < 0.01);
        // the defaults are readable
        assert!(Rgb(0x1d, 0x4e, 0xd8).contrast(white) >= MIN_CONTRAST);
        assert!(TEXT_COLOR.contrast(white) >= MIN_CONTRAST);
    }

    #[test]
    fn images_are_sniffed() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(
            sniff_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
            Some("image/svg+xml")
        );
        assert_eq!(sniff_image(b"<html><script>"), None);
        assert_eq!(sniff_image(b"GIF89a"), None);
    }
}
