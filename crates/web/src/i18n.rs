//! Languages of pages: the Fluent catalogues under `locales/`, and how a request's
//! language is chosen (API.md: `?lang=`, then the patient's preferred language,
//! then `Accept-Language`, then English; a `?lang=` choice is remembered in a cookie).

use carekey_domain::model::Language;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Isolation marks around placeables would show up as stray characters in HTML.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static ENGLISH: LazyLock<LanguageIdentifier> = LazyLock::new(|| fluent_templates::langid!("en"));
static SPANISH: LazyLock<LanguageIdentifier> = LazyLock::new(|| fluent_templates::langid!("es"));

/// The cookie that remembers a language picked with `?lang=`.
pub const LANG_COOKIE: &str = "carekey_lang";

/// Translations for one language, handed to templates as `tr`.
#[derive(Debug, Clone, Copy)]
pub struct Tr {
    pub lang: Language,
}

impl Tr {
    pub fn new(lang: Language) -> Self {
        Self { lang }
    }

    fn id(&self) -> &'static LanguageIdentifier {
        match self.lang {
            Language::En => &ENGLISH,
            Language::Es => &SPANISH,
        }
    }

    /// The text of a message.
    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(self.id(), key)
    }

    /// The words for a stored code (a status, a kind of message): the message
    /// `{group}-{code}`, e.g. `staff-portal-locked`.
    pub fn label(&self, group: &str, code: &str) -> String {
        self.t(&format!("{group}-{code}"))
    }

    /// The words for a code stored in the audit trail: the message
    /// `{group}-{code}` with the code's dots as dashes, e.g.
    /// `staff-audit-recovery-requested`; an event whose code has no words is
    /// shown by its code rather than hidden.
    pub fn stored(&self, group: &str, code: &str) -> String {
        let id = format!("{group}-{}", code.replace('.', "-"));
        LOCALES
            .try_lookup(self.id(), &id)
            .unwrap_or_else(|| code.to_owned())
    }

    /// The text of a message with one named argument.
    pub fn t1(&self, key: &str, name: &'static str, value: &str) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue> =
            HashMap::from([(Cow::Borrowed(name), FluentValue::from(value.to_owned()))]);
        LOCALES.lookup_with_args(self.id(), key, &args)
    }

    /// A message with named numeric and text arguments.
    pub fn with(&self, key: &str, args: &[(&'static str, FluentValue<'static>)]) -> String {
        let args: HashMap<Cow<'static, str>, FluentValue> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect();
        LOCALES.lookup_with_args(self.id(), key, &args)
    }

    /// The HTML `lang` attribute.
    pub fn code(&self) -> &'static str {
        self.lang.code()
    }

    /// The other language, for the switch link.
    pub fn other(&self) -> Language {
        match self.lang {
            Language::En => Language::Es,
            Language::Es => Language::En,
        }
    }
}

/// Picks the page language from the request's signals, in the contract's order.
pub fn negotiate(
    query: Option<&str>,
    cookie: Option<&str>,
    preferred: Option<Language>,
    accept_language: Option<&str>,
) -> Language {
    query
        .and_then(Language::from_tag)
        .or_else(|| cookie.and_then(Language::from_tag))
        .or(preferred)
        .or_else(|| {
            // Tags come back best first; `es-MX` counts as Spanish.
            accept_language::parse(accept_language?)
                .iter()
                .find_map(|tag| Language::from_tag(tag))
        })
        .unwrap_or_default()
}

/// The language signals of an API request: a choice (`?lang=`, or the cookie
/// that remembers one) and the browser's `Accept-Language`. A message to a
/// patient puts the patient's own language between the two (API.md).
#[derive(Debug, Clone, Copy, Default)]
pub struct LanguageSignals {
    pub chosen: Option<Language>,
    pub browser: Option<Language>,
}

impl LanguageSignals {
    fn of(parts: &axum::http::request::Parts) -> Self {
        let query = parts.uri.query().and_then(|query| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(name, _)| name == "lang")
                .map(|(_, value)| value)
        });
        let cookie = axum_extra::extract::cookie::CookieJar::from_headers(&parts.headers)
            .get(LANG_COOKIE)
            .map(|c| c.value().to_owned());
        let accept = parts
            .headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Self {
            chosen: query
                .as_deref()
                .and_then(Language::from_tag)
                .or_else(|| cookie.as_deref().and_then(Language::from_tag)),
            browser: accept.and_then(|accept| {
                accept_language::parse(accept)
                    .iter()
                    .find_map(|tag| Language::from_tag(tag))
            }),
        }
    }

    /// The language when no patient is known.
    pub fn resolve(&self) -> Language {
        self.chosen.or(self.browser).unwrap_or_default()
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for LanguageSignals {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::of(parts))
    }
}

/// The language of an API request: `?lang=`, the language cookie, then
/// `Accept-Language` (API.md), for messages such as policy violations.
pub struct RequestLanguage(pub Language);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestLanguage {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(LanguageSignals::of(parts).resolve()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn message_ids(ftl: &str) -> BTreeSet<String> {
        ftl.lines()
            .filter(|line| line.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .filter_map(|line| line.split_once('=').map(|(id, _)| id.trim().to_owned()))
            .collect()
    }

    #[test]
    fn every_message_exists_in_both_languages() {
        let english = message_ids(include_str!("../locales/en/main.ftl"));
        let spanish = message_ids(include_str!("../locales/es/main.ftl"));
        let missing_in_spanish: Vec<_> = english.difference(&spanish).collect();
        let missing_in_english: Vec<_> = spanish.difference(&english).collect();
        assert!(
            missing_in_spanish.is_empty(),
            "missing in es: {missing_in_spanish:?}"
        );
        assert!(
            missing_in_english.is_empty(),
            "missing in en: {missing_in_english:?}"
        );
        assert!(english.len() > 20);
    }

    /// Every message id a template or handler asks for by name (`tr.t("…")`,
    /// `tr.t1("…", …)`, `tr.with("…", …)`), from the files themselves.
    fn ids_asked_for() -> BTreeSet<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        let mut folders = vec![root.join("templates"), root.join("src")];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let mut asked = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for call in ["t(\"", "t1(\"", "with(\""] {
                for (at, _) in text.match_indices(call) {
                    let before = text[..at].chars().next_back();
                    if before != Some('.') {
                        continue;
                    }
                    let rest = &text[at + call.len()..];
                    let id = &rest[..rest.find('"').unwrap()];
                    if id.contains('-') && !id.contains(['{', ' ']) {
                        asked.insert((id.to_owned(), file.display().to_string()));
                    }
                }
            }
        }
        asked
    }

    #[test]
    fn every_message_a_page_asks_for_exists() {
        let english = message_ids(include_str!("../locales/en/main.ftl"));
        let asked = ids_asked_for();
        assert!(asked.len() > 100, "found only {} uses", asked.len());
        let missing: Vec<_> = asked
            .iter()
            .filter(|(id, _)| !english.contains(id))
            .collect();
        assert!(
            missing.is_empty(),
            "asked for but not in the catalogues: {missing:?}"
        );
    }

    /// Every action, actor and outcome the audit trail stores, read from
    /// their `=> "code"` arms in the domain, has words on the audit page.
    #[test]
    fn every_audit_code_has_words() {
        let source = include_str!("../../domain/src/audit.rs");
        let groups = [
            ("AuditAction::", "staff-audit"),
            ("Actor::", "staff-actor"),
            ("Outcome::", "staff-outcome"),
        ];
        let mut checked = 0;
        let mut missing = Vec::new();
        for line in source.lines().map(str::trim) {
            let Some((group, code)) = groups.iter().find_map(|(prefix, group)| {
                let arm = line.strip_prefix(prefix)?;
                let code = arm.split_once("=> \"")?.1.strip_suffix("\",")?;
                Some((*group, code))
            }) else {
                continue;
            };
            checked += 1;
            for tr in [Tr::new(Language::En), Tr::new(Language::Es)] {
                if tr.stored(group, code) == code {
                    missing.push(format!("{}: {group}-{code}", tr.code()));
                }
            }
        }
        assert!(checked >= 36, "found only {checked} codes in audit.rs");
        assert!(missing.is_empty(), "no words for {missing:?}");
    }

    /// A Spanish line identical to the English one was most likely copied and
    /// never translated; the few words that are the same in both are listed.
    #[test]
    fn spanish_lines_are_not_english_copies() {
        let same_in_both = ["staff-col-portal"];
        let lines = |ftl: &'static str| -> HashMap<String, String> {
            ftl.lines()
                .filter(|line| line.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
                .filter_map(|line| line.split_once('='))
                .map(|(id, text)| (id.trim().to_owned(), text.trim().to_owned()))
                .collect()
        };
        let english = lines(include_str!("../locales/en/main.ftl"));
        let spanish = lines(include_str!("../locales/es/main.ftl"));
        let copied: Vec<_> = english
            .iter()
            .filter(|(id, text)| {
                !text.is_empty()
                    && spanish.get(*id) == Some(*text)
                    && !same_in_both.contains(&id.as_str())
            })
            .map(|(id, _)| id)
            .collect();
        assert!(copied.is_empty(), "not translated: {copied:?}");
    }

    /// Plain language: what patients read (pages and messages, not the staff
    /// console) scores at about a 6th-grade reading level overall, and no
    /// single sentence-length line above 9th grade (Flesch-Kincaid; English).
    #[test]
    fn what_patients_read_is_plain_english() {
        let catalogues = [
            include_str!("../locales/en/main.ftl"),
            include_str!("../../delivery/locales/en/messages.ftl"),
        ];
        let mut everything = String::new();
        let mut hard = Vec::new();
        for ftl in catalogues {
            for line in ftl.lines() {
                let Some((id, text)) = line.split_once('=') else {
                    continue;
                };
                let id = id.trim();
                if !line.starts_with(|c: char| c.is_ascii_alphabetic()) || id.starts_with("staff-")
                {
                    continue;
                }
                let text = text.trim();
                everything.push_str(text);
                everything.push(' ');
                let grade = textstat::flesch_kincaid_grade(text);
                if textstat::lexicon_count(text) >= 8 && grade > 9.0 {
                    hard.push(format!("{id} (grade {grade:.1}): {text}"));
                }
            }
        }
        let overall = textstat::flesch_kincaid_grade(&everything);
        assert!(overall <= 6.5, "overall grade {overall:.1}");
        assert!(hard.is_empty(), "hard to read:\n{}", hard.join("\n"));
    }

    /// Staff read plain words, not stored codes: every code a staff page
    /// shows through [`Tr::label`] has its words in both languages.
    #[test]
    fn every_code_a_staff_page_shows_has_words() {
        use carekey_domain::message::{Channel, MessageKind, MessageStatus};
        use carekey_domain::staff::PortalStatus;
        // A new variant stops this compiling until it is added to the lists below.
        // (Message kinds have their own list, `MessageKind::ALL`.)
        fn every_variant_listed(p: PortalStatus, c: Channel, s: MessageStatus) {
            use MessageStatus as S;
            use PortalStatus as P;
            match p {
                P::NotEnrolled | P::Invited | P::Active | P::Locked | P::Disabled => {}
            }
            match c {
                Channel::Email | Channel::Sms | Channel::Voice => {}
            }
            match s {
                S::Queued | S::Sending | S::Sent | S::Delivered | S::Failed | S::Bounced => {}
            }
        }
        let _ = every_variant_listed;
        let codes: Vec<String> = [
            PortalStatus::NotEnrolled,
            PortalStatus::Invited,
            PortalStatus::Active,
            PortalStatus::Locked,
            PortalStatus::Disabled,
        ]
        .iter()
        .map(|s| format!("staff-portal-{}", s.as_str()))
        .chain(
            MessageKind::ALL
                .iter()
                .map(|k| format!("staff-kind-{}", k.as_str())),
        )
        .chain(
            [Channel::Email, Channel::Sms, Channel::Voice]
                .iter()
                .map(|c| format!("staff-channel-{}", c.as_str())),
        )
        .chain(
            [
                MessageStatus::Queued,
                MessageStatus::Sending,
                MessageStatus::Sent,
                MessageStatus::Delivered,
                MessageStatus::Failed,
                MessageStatus::Bounced,
            ]
            .iter()
            .map(|s| format!("staff-delivery-{}", s.as_str())),
        )
        .collect();
        assert_eq!(codes.len(), 22);
        for (language, ftl) in [
            ("en", include_str!("../locales/en/main.ftl")),
            ("es", include_str!("../locales/es/main.ftl")),
        ] {
            let ids = message_ids(ftl);
            let missing: Vec<_> = codes.iter().filter(|id| !ids.contains(*id)).collect();
            assert!(missing.is_empty(), "{language} lacks {missing:?}");
        }
    }

    #[test]
    fn messages_are_translated_not_fallen_back() {
        let en = Tr::new(Language::En);
        let es = Tr::new(Language::Es);
        assert_ne!(en.t("signin-title"), es.t("signin-title"));
        assert_eq!(es.t1("home-greeting", "name", "María"), "Hola, María");
    }

    #[test]
    fn the_query_beats_the_cookie_beats_the_patient_beats_the_browser() {
        let es = Some(Language::Es);
        assert_eq!(
            negotiate(Some("es"), Some("en"), None, Some("en")),
            Language::Es
        );
        assert_eq!(negotiate(None, Some("es"), None, Some("en")), Language::Es);
        assert_eq!(negotiate(None, None, es, Some("en-US")), Language::Es);
        assert_eq!(
            negotiate(None, None, None, Some("es-MX,es;q=0.9,en;q=0.5")),
            Language::Es
        );
        assert_eq!(
            negotiate(None, None, None, Some("vi,fr;q=0.8")),
            Language::En
        );
        assert_eq!(negotiate(Some("xx"), None, None, None), Language::En);
    }
}
