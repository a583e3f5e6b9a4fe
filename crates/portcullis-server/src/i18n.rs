//! The pages' languages (issue 17 item 8): English and German, chosen by the pushed request's
//! `ui_locales` (OIDC Core §3.1.2.1), else the browser's `Accept-Language` (RFC 9110 §12.5.4),
//! else English. Every word a page shows is here, so that a language is complete or absent.

use serde::Serialize;

/// A language the pages are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    De,
}

impl Locale {
    /// The languages shipped, as published in `ui_locales_supported`.
    pub const TAGS: [&'static str; 2] = ["en", "de"];

    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }

    /// A shipped language named exactly by its primary tag (`de`, any case).
    pub fn exact(tag: &str) -> Option<Self> {
        match tag.to_ascii_lowercase().as_str() {
            "en" => Some(Self::En),
            "de" => Some(Self::De),
            _ => None,
        }
    }

    /// The shipped language a BCP 47 tag asks for: its primary subtag (`de-CH` is German).
    pub fn of_tag(tag: &str) -> Option<Self> {
        Self::exact(tag.split('-').next().unwrap_or(""))
    }

    /// `ui_locales` first (in its order), then `Accept-Language` (by weight), else English.
    pub fn negotiate(ui_locales: &[String], accept_language: Option<&str>) -> Self {
        ui_locales
            .iter()
            .find_map(|t| Self::of_tag(t))
            .or_else(|| accept_language.and_then(Self::from_accept_language))
            .unwrap_or_default()
    }

    /// The best shipped language of an `Accept-Language` header (`de-DE,de;q=0.9,en;q=0.5`).
    fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(u16, usize, Self)> = None;
        // a header of absurd length is read only in part
        for (i, item) in header.split(',').take(32).enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            let mut weight = 1000u16;
            for p in parts {
                if let Some(q) = p.trim().strip_prefix("q=") {
                    weight = parse_qvalue(q.trim()).unwrap_or(0);
                }
            }
            let Some(locale) = Self::of_tag(tag) else {
                continue;
            };
            if weight == 0 {
                continue;
            }
            // the highest weight wins; on a tie, the one listed first
            if best.is_none_or(|(w, _, _)| weight > w) {
                best = Some((weight, i, locale));
            }
        }
        best.map(|(_, _, l)| l)
    }

    pub fn strings(self) -> &'static Strings {
        match self {
            Self::En => &EN,
            Self::De => &DE,
        }
    }

    /// A duration in words, as the consent page says how long access lasts ("30 days").
    pub fn duration(self, seconds: i64) -> String {
        let (n, unit) = if seconds >= 2 * 86_400 {
            ((seconds + 43_200) / 86_400, Unit::Day)
        } else if seconds >= 2 * 3600 {
            ((seconds + 1800) / 3600, Unit::Hour)
        } else if seconds >= 120 {
            ((seconds + 30) / 60, Unit::Minute)
        } else {
            (seconds.max(1), Unit::Second)
        };
        let one = n == 1;
        let word = match (self, unit, one) {
            (Self::En, Unit::Day, true) => "day",
            (Self::En, Unit::Day, false) => "days",
            (Self::En, Unit::Hour, true) => "hour",
            (Self::En, Unit::Hour, false) => "hours",
            (Self::En, Unit::Minute, true) => "minute",
            (Self::En, Unit::Minute, false) => "minutes",
            (Self::En, Unit::Second, true) => "second",
            (Self::En, Unit::Second, false) => "seconds",
            (Self::De, Unit::Day, true) => "Tag",
            (Self::De, Unit::Day, false) => "Tage",
            (Self::De, Unit::Hour, true) => "Stunde",
            (Self::De, Unit::Hour, false) => "Stunden",
            (Self::De, Unit::Minute, true) => "Minute",
            (Self::De, Unit::Minute, false) => "Minuten",
            (Self::De, Unit::Second, true) => "Sekunde",
            (Self::De, Unit::Second, false) => "Sekunden",
        };
        format!("{n} {word}")
    }

    /// The sentence on the consent page: how long the access lasts.
    pub fn access_lasts(self, seconds: i64, refresh: bool) -> String {
        let d = self.duration(seconds);
        match (self, refresh) {
            (Self::En, true) => {
                format!("This access lasts for up to {d}, also while you are not using the application.")
            }
            (Self::En, false) => format!("This access lasts for up to {d}."),
            (Self::De, true) => {
                format!("Dieser Zugriff gilt für bis zu {d}, auch während Sie die Anwendung nicht nutzen.")
            }
            (Self::De, false) => format!("Dieser Zugriff gilt für bis zu {d}."),
        }
    }
}

#[derive(Clone, Copy)]
enum Unit {
    Day,
    Hour,
    Minute,
    Second,
}

/// RFC 9110 §12.4.2 `qvalue` in thousandths.
fn parse_qvalue(q: &str) -> Option<u16> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// What went wrong, in words a customer understands (the technical detail is shown apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The authorization request is not valid or has expired.
    InvalidRequest,
    /// The form's CSRF check failed.
    FormExpired,
    /// The browser sent no CSRF cookie.
    CookiesNeeded,
    /// The form could not be read.
    BadForm,
    /// Neither allow nor deny was chosen.
    NoDecision,
    /// The signed-in account was removed.
    AccountGone,
    /// `prompt=login` / `max_age` need a newer sign-in.
    SignInAgain,
    Busy,
    TooManyAttempts,
    /// The sign-out request is not valid.
    InvalidLogout,
    /// Issue 17 item 7: the sign-in (interaction) is unknown or has ended.
    SignInUnknown,
    /// Issue 17 item 7: the sign-in was started in another browser.
    OtherBrowser,
    /// Issue 17 item 7: the sign-in has given its answer already (400).
    AlreadyCompleted,
    /// Issue 17 item 7: the sign-in ran out of time (410).
    TookTooLong,
    /// Issue 17 item 7: a sign-in on the same link completed in another browser first (409).
    CompletedElsewhere,
    /// Issue 17 item 7: the sign-in link is open in too many browsers (409).
    TooManyBrowsers,
    ServerError,
}

impl Problem {
    pub fn words(self, locale: Locale) -> &'static str {
        use Problem::*;
        match (locale, self) {
            (Locale::En, InvalidRequest) => {
                "The sign-in link is not valid or has expired. Please go back to the application and start again."
            }
            (Locale::En, FormExpired) => {
                "This page has expired or was not opened from this site. Please start again from the application."
            }
            (Locale::En, CookiesNeeded) => {
                "Your browser did not send the cookie this page needs. Please allow cookies for this site and start again."
            }
            (Locale::En, BadForm) => "The form could not be read. Please start again from the application.",
            (Locale::En, NoDecision) => "Please choose whether to allow or deny access.",
            (Locale::En, AccountGone) => "Your account no longer exists.",
            (Locale::En, SignInAgain) => {
                "For your security you need to sign in again. Please start again from the application."
            }
            (Locale::En, Busy) => "The service is busy right now. Please try again in a few seconds.",
            (Locale::En, TooManyAttempts) => "Too many failed sign-in attempts. Please wait a minute and try again.",
            (Locale::En, InvalidLogout) => "The sign-out request is not valid.",
            (Locale::En, SignInUnknown) => {
                "This sign-in is unknown or has ended. Please go back to the application and start again."
            }
            (Locale::En, OtherBrowser) => {
                "This sign-in was started in another browser. Please go back to the application and start again."
            }
            (Locale::En, AlreadyCompleted) => {
                "This sign-in has already been completed. Please go back to the application."
            }
            (Locale::En, TookTooLong) => {
                "This sign-in took too long. Please go back to the application and start again."
            }
            (Locale::En, CompletedElsewhere) => {
                "This sign-in was already completed elsewhere, for example in another browser. Please go back to the application and start again."
            }
            (Locale::En, TooManyBrowsers) => {
                "This sign-in link has been opened in too many browsers. Please go back to the application and start again."
            }
            (Locale::En, ServerError) => "Something went wrong on our side. Please try again later.",
            (Locale::De, InvalidRequest) => {
                "Der Anmeldelink ist ungültig oder abgelaufen. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, FormExpired) => {
                "Diese Seite ist abgelaufen oder wurde nicht von dieser Website aus geöffnet. Bitte beginnen Sie in der Anwendung erneut."
            }
            (Locale::De, CookiesNeeded) => {
                "Ihr Browser hat das Cookie, das diese Seite braucht, nicht gesendet. Bitte erlauben Sie Cookies für diese Website und beginnen Sie erneut."
            }
            (Locale::De, BadForm) => {
                "Das Formular konnte nicht gelesen werden. Bitte beginnen Sie in der Anwendung erneut."
            }
            (Locale::De, NoDecision) => "Bitte wählen Sie, ob Sie den Zugriff erlauben oder ablehnen.",
            (Locale::De, AccountGone) => "Ihr Konto besteht nicht mehr.",
            (Locale::De, SignInAgain) => {
                "Zu Ihrer Sicherheit müssen Sie sich erneut anmelden. Bitte beginnen Sie in der Anwendung erneut."
            }
            (Locale::De, Busy) => {
                "Der Dienst ist gerade ausgelastet. Bitte versuchen Sie es in einigen Sekunden erneut."
            }
            (Locale::De, TooManyAttempts) => {
                "Zu viele fehlgeschlagene Anmeldeversuche. Bitte warten Sie eine Minute und versuchen Sie es erneut."
            }
            (Locale::De, InvalidLogout) => "Die Abmeldeanfrage ist ungültig.",
            (Locale::De, SignInUnknown) => {
                "Diese Anmeldung ist unbekannt oder beendet. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, OtherBrowser) => {
                "Diese Anmeldung wurde in einem anderen Browser begonnen. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, AlreadyCompleted) => {
                "Diese Anmeldung ist bereits abgeschlossen. Bitte kehren Sie zur Anwendung zurück."
            }
            (Locale::De, TookTooLong) => {
                "Diese Anmeldung hat zu lange gedauert. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, CompletedElsewhere) => {
                "Diese Anmeldung wurde bereits anderswo abgeschlossen, zum Beispiel in einem anderen Browser. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, TooManyBrowsers) => {
                "Dieser Anmeldelink wurde in zu vielen Browsern geöffnet. Bitte kehren Sie zur Anwendung zurück und beginnen Sie erneut."
            }
            (Locale::De, ServerError) => "Bei uns ist ein Fehler aufgetreten. Bitte versuchen Sie es später erneut.",
        }
    }
}

/// Every fixed word of the pages, as templates see it (`t.sign_in`).
#[derive(Debug, Serialize)]
pub struct Strings {
    pub sign_in: &'static str,
    pub asks_sign_in: &'static str,
    pub unnamed_asks_sign_in: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub wrong_password: &'static str,
    pub allow_access_title: &'static str,
    pub allow_access_heading: &'static str,
    pub signed_in_as: &'static str,
    pub not_you: &'static str,
    pub would_like_to: &'static str,
    pub unnamed_would_like_to: &'static str,
    pub scope_fallback: &'static str,
    pub client_documents: &'static str,
    pub privacy_policy: &'static str,
    pub terms: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    pub error_title: &'static str,
    pub error_heading: &'static str,
    pub reference: &'static str,
    pub technical_detail: &'static str,
    pub back_to_application: &'static str,
    pub sign_out_title: &'static str,
    pub asks_sign_out: &'static str,
    pub sign_out: &'static str,
    pub signed_out_heading: &'static str,
    pub close_window: &'static str,
    pub footer_label: &'static str,
    pub logo_alt: &'static str,
}

static EN: Strings = Strings {
    sign_in: "Sign in",
    asks_sign_in: "asks you to sign in.",
    unnamed_asks_sign_in: "An application that has not registered a name asks you to sign in.",
    username: "Username",
    password: "Password",
    wrong_password: "The username or password is not correct.",
    allow_access_title: "Allow access",
    allow_access_heading: "Allow access?",
    signed_in_as: "You are signed in as",
    not_you: "Not you? Sign in as someone else",
    would_like_to: "would like to:",
    unnamed_would_like_to: "An application that has not registered a name would like to:",
    scope_fallback: "access your account on your behalf",
    client_documents: "Before you decide, read the application's",
    privacy_policy: "privacy policy",
    terms: "terms of service",
    allow: "Allow",
    deny: "Deny",
    error_title: "Request refused",
    error_heading: "This request cannot be completed",
    reference: "Reference for support",
    technical_detail: "Technical detail",
    back_to_application: "Return to the application",
    sign_out_title: "Sign out",
    asks_sign_out: "asks you to sign out.",
    sign_out: "Sign out",
    signed_out_heading: "You are signed out",
    close_window: "You can close this window.",
    footer_label: "Links",
    logo_alt: "logo",
};

static DE: Strings = Strings {
    sign_in: "Anmelden",
    asks_sign_in: "bittet Sie, sich anzumelden.",
    unnamed_asks_sign_in: "Eine Anwendung ohne registrierten Namen bittet Sie, sich anzumelden.",
    username: "Benutzername",
    password: "Passwort",
    wrong_password: "Benutzername oder Passwort ist nicht korrekt.",
    allow_access_title: "Zugriff erlauben",
    allow_access_heading: "Zugriff erlauben?",
    signed_in_as: "Sie sind angemeldet als",
    not_you: "Nicht Sie? Mit einem anderen Konto anmelden",
    would_like_to: "möchte:",
    unnamed_would_like_to: "Eine Anwendung ohne registrierten Namen möchte:",
    scope_fallback: "in Ihrem Namen auf Ihr Konto zugreifen",
    client_documents: "Bevor Sie entscheiden, lesen Sie die Dokumente der Anwendung:",
    privacy_policy: "Datenschutzerklärung",
    terms: "Nutzungsbedingungen",
    allow: "Erlauben",
    deny: "Ablehnen",
    error_title: "Anfrage abgelehnt",
    error_heading: "Diese Anfrage kann nicht abgeschlossen werden",
    reference: "Referenz für den Support",
    technical_detail: "Technische Angabe",
    back_to_application: "Zurück zur Anwendung",
    sign_out_title: "Abmelden",
    asks_sign_out: "bittet Sie, sich abzumelden.",
    sign_out: "Abmelden",
    signed_out_heading: "Sie sind abgemeldet",
    close_window: "Sie können dieses Fenster schließen.",
    footer_label: "Links",
    logo_alt: "Logo",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_locales_come_first_then_accept_language() {
        let ui = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Locale::negotiate(&ui(&["fr", "de-CH"]), Some("en")), Locale::De);
        assert_eq!(Locale::negotiate(&ui(&["fr"]), Some("de-DE,de;q=0.9")), Locale::De);
        assert_eq!(Locale::negotiate(&[], Some("fr, en;q=0.2, de;q=0.8")), Locale::De);
        assert_eq!(Locale::negotiate(&[], Some("de;q=0, en")), Locale::En);
        assert_eq!(Locale::negotiate(&[], Some("de;q=1.5")), Locale::En);
        assert_eq!(Locale::negotiate(&[], Some("*")), Locale::En);
        assert_eq!(Locale::negotiate(&[], None), Locale::En);
        assert_eq!(Locale::negotiate(&[], Some("en-GB, de")), Locale::En);
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(Locale::En.duration(30 * 86_400), "30 days");
        assert_eq!(Locale::En.duration(86_400), "24 hours");
        assert_eq!(Locale::En.duration(600), "10 minutes");
        assert_eq!(Locale::En.duration(3600), "60 minutes");
        assert_eq!(Locale::De.duration(30 * 86_400), "30 Tage");
        assert_eq!(Locale::De.duration(60), "60 Sekunden");
        assert!(Locale::En.access_lasts(30 * 86_400, true).contains("for up to 30 days"));
    }
}
