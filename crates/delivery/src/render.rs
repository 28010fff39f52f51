//! Message templates: each kind of message, in English and Spanish, as an email
//! (plain text and HTML), a text message, or a voice script (TwiML). The words
//! live in `locales/*/messages.ftl`; this module arranges them.

use askama::Template;
use carekey_domain::message::{Channel, MessageData, MessageKind};
use carekey_domain::model::Language;
use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

fluent_templates::static_loader! {
    static MESSAGES = {
        locales: "./locales",
        fallback_language: "en",
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

static ENGLISH: LazyLock<LanguageIdentifier> = LazyLock::new(|| fluent_templates::langid!("en"));
static SPANISH: LazyLock<LanguageIdentifier> = LazyLock::new(|| fluent_templates::langid!("es"));

/// The clinic's details every message names.
#[derive(Debug, Clone)]
pub struct RenderContext {
    pub clinic_name: String,
    pub help_phone: String,
}

/// A message ready for its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rendered {
    Email {
        subject: String,
        text: String,
        html: String,
    },
    Sms {
        body: String,
    },
    /// TwiML for a voice call.
    Voice {
        twiml: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{kind} messages cannot be sent by {channel}")]
    Unsupported {
        kind: &'static str,
        channel: &'static str,
    },
    #[error("the message lacks its {0}")]
    Missing(&'static str),
    #[error("the email template failed: {0}")]
    Template(String),
}

/// One part of an email's body.
#[derive(Debug, Clone)]
enum Block {
    Para(String),
    Button {
        label: String,
        href: String,
    },
    /// Large text: a code or a username.
    Emphasis(String),
}

#[derive(Template)]
#[template(path = "email.html")]
struct EmailHtml<'a> {
    lang: &'static str,
    subject: &'a str,
    clinic: &'a str,
    greeting: &'a str,
    blocks: &'a [Block],
    signoff: &'a str,
}

/// Words in one language with the clinic's details at hand.
struct Words<'a> {
    lang: &'static LanguageIdentifier,
    ctx: &'a RenderContext,
    data: &'a MessageData,
}

impl Words<'_> {
    fn get(&self, key: &str) -> String {
        self.with(key, &[])
    }

    /// A message with the standard arguments (clinic, phone, minutes, …) and `extra`.
    fn with(&self, key: &str, extra: &[(&'static str, String)]) -> String {
        let mut args: HashMap<Cow<'static, str>, FluentValue> = HashMap::new();
        args.insert("clinic".into(), self.ctx.clinic_name.clone().into());
        args.insert("phone".into(), self.ctx.help_phone.clone().into());
        args.insert(
            "minutes".into(),
            self.data.valid_minutes.unwrap_or(0).into(),
        );
        args.insert(
            "days".into(),
            (self.data.valid_minutes.unwrap_or(0) / (24 * 60)).into(),
        );
        for (name, value) in extra {
            args.insert(Cow::Borrowed(name), value.clone().into());
        }
        MESSAGES.lookup_with_args(self.lang, key, &args)
    }
}

/// Renders a message for its channel.
pub fn render(
    kind: MessageKind,
    channel: Channel,
    language: Language,
    data: &MessageData,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let words = Words {
        lang: match language {
            Language::En => &ENGLISH,
            Language::Es => &SPANISH,
        },
        ctx,
        data,
    };
    match channel {
        Channel::Email => email(kind, language, &words),
        Channel::Sms => sms(kind, &words).map(|body| Rendered::Sms { body }),
        Channel::Voice => voice(kind, language, &words).map(|twiml| Rendered::Voice { twiml }),
    }
}

fn email(kind: MessageKind, language: Language, w: &Words<'_>) -> Result<Rendered, RenderError> {
    let k = kind.as_str();
    let key = |suffix: &str| format!("{k}-{suffix}");
    let data = w.data;
    let link = || data.link.clone().ok_or(RenderError::Missing("link"));
    let code = || data.code.clone().ok_or(RenderError::Missing("code"));
    let mut blocks = vec![Block::Para(w.get(&key("intro")))];
    match kind {
        MessageKind::PasswordReset => {
            if let Some(href) = data.link.clone() {
                blocks.push(Block::Para(w.get(&key("link"))));
                blocks.push(Block::Button {
                    label: w.get(&key("button")),
                    href,
                });
            }
            if let Some(code) = data.code.clone() {
                blocks.push(Block::Para(w.get(&key("code"))));
                blocks.push(Block::Emphasis(code));
            }
            if !data.account_links.is_empty() {
                blocks.push(Block::Para(w.get(&key("links"))));
                for account in &data.account_links {
                    blocks.push(Block::Button {
                        label: w.with(
                            &key("button-for"),
                            &[("username", account.username.clone())],
                        ),
                        href: account.link.clone(),
                    });
                }
            }
            if data.link.is_none() && data.account_links.is_empty() && data.code.is_none() {
                return Err(RenderError::Missing("link or code"));
            }
            blocks.push(Block::Para(w.get("valid-for")));
            blocks.push(Block::Para(w.get("not-you")));
            blocks.push(Block::Para(w.get("worried")));
        }
        MessageKind::UsernameReminder => {
            if data.usernames.is_empty() {
                return Err(RenderError::Missing("usernames"));
            }
            let intro = if data.usernames.len() == 1 {
                "one"
            } else {
                "many"
            };
            blocks.push(Block::Para(w.get(&key(intro))));
            blocks.extend(data.usernames.iter().cloned().map(Block::Emphasis));
            blocks.push(Block::Para(w.get("not-you")));
            blocks.push(Block::Para(w.get("worried")));
        }
        MessageKind::PasswordChanged => {
            blocks.push(Block::Para(w.get(&key("ok"))));
            blocks.push(Block::Para(w.get(&key("not-you"))));
        }
        MessageKind::AccountLocked => {
            blocks.push(Block::Para(w.get(&key("next"))));
            blocks.push(Block::Button {
                label: w.get(&key("button")),
                href: link()?,
            });
            blocks.push(Block::Para(w.get("worried")));
        }
        MessageKind::Invitation => {
            blocks.push(Block::Para(w.get(&key("steps"))));
            blocks.push(Block::Emphasis(code()?));
            blocks.push(Block::Button {
                label: w.get(&key("button")),
                href: link()?,
            });
            blocks.push(Block::Para(w.get(&key("expiry"))));
            blocks.push(Block::Para(w.get("worried")));
        }
        MessageKind::ContactVerification => {
            blocks.push(Block::Emphasis(code()?));
            blocks.push(Block::Para(w.get("valid-for")));
            blocks.push(Block::Para(w.get("not-you")));
            blocks.push(Block::Para(w.get("worried")));
        }
        MessageKind::ContactChanged => {
            blocks.push(Block::Para(w.get(&key("not-you"))));
        }
        MessageKind::AccountHelp => {
            let action = data
                .action
                .as_deref()
                .ok_or(RenderError::Missing("action"))?;
            blocks.push(Block::Para(w.get(&key(action))));
            blocks.push(Block::Para(w.get(&key("not-you"))));
        }
    }
    let subject = w.get(&key("subject"));
    let greeting = match &data.given_name {
        Some(name) => w.with("greeting", &[("name", name.clone())]),
        None => w.get("greeting-anonymous"),
    };
    let signoff = w.get("signoff");
    let html = EmailHtml {
        lang: language.code(),
        subject: &subject,
        clinic: &w.ctx.clinic_name,
        greeting: &greeting,
        blocks: &blocks,
        signoff: &signoff,
    }
    .render()
    .map_err(|e| RenderError::Template(e.to_string()))?;
    let mut text = vec![greeting.clone()];
    text.extend(blocks.iter().map(|block| match block {
        Block::Para(text) => text.clone(),
        Block::Button { href, .. } => href.clone(),
        Block::Emphasis(text) => format!("    {text}"),
    }));
    text.push(signoff);
    Ok(Rendered::Email {
        subject,
        text: text.join("\n\n") + "\n",
        html,
    })
}

fn sms(kind: MessageKind, w: &Words<'_>) -> Result<String, RenderError> {
    let data = w.data;
    let code = || data.code.clone().ok_or(RenderError::Missing("code"));
    let link = || data.link.clone().ok_or(RenderError::Missing("link"));
    let k = kind.as_str();
    Ok(match kind {
        MessageKind::PasswordReset => match (&data.code, &data.link) {
            (Some(code), _) => w.with(&format!("{k}-sms"), &[("code", code.clone())]),
            (None, Some(link)) => w.with(&format!("{k}-link-sms"), &[("link", link.clone())]),
            (None, None) => return Err(RenderError::Missing("link or code")),
        },
        MessageKind::UsernameReminder => w.with(
            &format!("{k}-sms"),
            &[("usernames", data.usernames.join(", "))],
        ),
        MessageKind::AccountLocked => w.with(&format!("{k}-sms"), &[("link", link()?)]),
        MessageKind::Invitation => {
            w.with(&format!("{k}-sms"), &[("code", code()?), ("link", link()?)])
        }
        MessageKind::ContactVerification => w.with(&format!("{k}-sms"), &[("code", code()?)]),
        MessageKind::PasswordChanged | MessageKind::ContactChanged => w.get(&format!("{k}-sms")),
        MessageKind::AccountHelp => {
            let action = data
                .action
                .as_deref()
                .ok_or(RenderError::Missing("action"))?;
            w.get(&format!("{k}-sms-{action}"))
        }
    })
}

/// Reads a username letter by letter, naming its punctuation.
fn spell(username: &str, w: &Words<'_>) -> String {
    username
        .chars()
        .map(|c| match c {
            '.' => w.get("spell-dot"),
            '_' => w.get("spell-underscore"),
            '-' => w.get("spell-dash"),
            c => c.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A voice call reads a numeric code digit by digit (or a username letter by
/// letter), twice, in the patient's language.
fn voice(kind: MessageKind, language: Language, w: &Words<'_>) -> Result<String, RenderError> {
    let (intro, again) = match kind {
        MessageKind::PasswordReset => ("password_reset-voice", "voice-again"),
        MessageKind::ContactVerification => ("contact_verification-voice", "voice-again"),
        MessageKind::UsernameReminder => {
            ("username_reminder-voice", "username_reminder-voice-again")
        }
        other => {
            return Err(RenderError::Unsupported {
                kind: other.as_str(),
                channel: "voice",
            })
        }
    };
    let spoken = if kind == MessageKind::UsernameReminder {
        if w.data.usernames.is_empty() {
            return Err(RenderError::Missing("usernames"));
        }
        let and = format!(". {} ", w.get("spell-and"));
        w.data
            .usernames
            .iter()
            .map(|username| spell(username, w))
            .collect::<Vec<_>>()
            .join(&and)
    } else {
        let code = w.data.code.as_deref().ok_or(RenderError::Missing("code"))?;
        let digits: Vec<String> = code
            .chars()
            .filter(char::is_ascii_digit)
            .map(String::from)
            .collect();
        if digits.is_empty() {
            return Err(RenderError::Missing("numeric code"));
        }
        digits.join(", ")
    };
    let say_language = match language {
        Language::En => "en-US",
        Language::Es => "es-US",
    };
    let say = |text: &str| {
        format!(
            r#"<Say language="{say_language}">{}</Say>"#,
            xml_escape(text)
        )
    };
    Ok(format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response>{}<Pause length="1"/>{}<Pause length="1"/>{}</Response>"#,
        say(&format!("{} {spoken}.", w.get(intro))),
        say(&format!("{} {spoken}.", w.get(again))),
        say(&w.get("voice-goodbye")),
    ))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn ctx() -> RenderContext {
        RenderContext {
            clinic_name: "Hill & Valley Clinic".into(),
            help_phone: "(210) 555-0100".into(),
        }
    }

    fn reset() -> MessageData {
        MessageData {
            given_name: Some("María".into()),
            link: Some("https://portal.example/reset?token=abc".into()),
            code: Some("482913".into()),
            valid_minutes: Some(60),
            ..MessageData::default()
        }
    }

    fn ids(ftl: &str) -> BTreeSet<String> {
        ftl.lines()
            .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
            .filter_map(|l| l.split_once('=').map(|(id, _)| id.trim().to_owned()))
            .collect()
    }

    #[test]
    fn every_message_exists_in_both_languages() {
        let en = ids(include_str!("../locales/en/messages.ftl"));
        let es = ids(include_str!("../locales/es/messages.ftl"));
        assert_eq!(en, es);
    }

    #[test]
    fn every_kind_renders_as_email_and_sms_in_both_languages() {
        let data = MessageData {
            usernames: vec!["maria.garcia".into()],
            action: Some("unlock".into()),
            ..reset()
        };
        for language in Language::ALL {
            for kind in MessageKind::ALL {
                let email = render(kind, Channel::Email, language, &data, &ctx()).unwrap();
                let Rendered::Email {
                    subject,
                    text,
                    html,
                } = email
                else {
                    panic!()
                };
                assert!(
                    !subject.is_empty()
                        && !text.contains("{")
                        && html.contains(&format!(r#"lang="{}""#, language.code()))
                );
                assert!(
                    text.contains("(210) 555-0100"),
                    "{kind:?}: every email names the help line: {text}"
                );
                let Rendered::Sms { body } =
                    render(kind, Channel::Sms, language, &data, &ctx()).unwrap()
                else {
                    panic!()
                };
                assert!(
                    body.contains("(210) 555-0100"),
                    "{kind:?}: every text names the help line: {body}"
                );
            }
        }
    }

    #[test]
    fn a_spanish_reset_email_carries_link_code_and_help_line() {
        let Rendered::Email {
            subject,
            text,
            html,
        } = render(
            MessageKind::PasswordReset,
            Channel::Email,
            Language::Es,
            &reset(),
            &ctx(),
        )
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(
            subject,
            "Cambie la contraseña de su portal de Hill & Valley Clinic"
        );
        assert!(text.starts_with("Hola, María:"));
        for part in [
            "https://portal.example/reset?token=abc",
            "482913",
            "60 minutos",
            "(210) 555-0100",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(html.contains(r#"href="https://portal.example/reset?token=abc""#));
        assert!(!html.contains("Hill & Valley"), "HTML is escaped");
    }

    #[test]
    fn a_voice_call_reads_the_code_digit_by_digit_twice() {
        let Rendered::Voice { twiml } = render(
            MessageKind::PasswordReset,
            Channel::Voice,
            Language::Es,
            &reset(),
            &ctx(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(twiml.matches("4, 8, 2, 9, 1, 3.").count(), 2, "{twiml}");
        assert!(twiml.contains(r#"<Say language="es-US">"#));
        assert!(twiml.contains("Hill &amp; Valley Clinic"));
        assert!(render(
            MessageKind::PasswordChanged,
            Channel::Voice,
            Language::En,
            &reset(),
            &ctx()
        )
        .is_err());
    }

    #[test]
    fn a_family_email_offers_one_reset_button_per_account() {
        let data = MessageData {
            given_name: None,
            link: None,
            account_links: vec![
                carekey_domain::message::AccountLink {
                    username: "sarah.t".into(),
                    link: "https://portal.example/reset?token=one".into(),
                },
                carekey_domain::message::AccountLink {
                    username: "ethan.t".into(),
                    link: "https://portal.example/reset?token=two".into(),
                },
            ],
            ..reset()
        };
        let Rendered::Email { text, html, .. } = render(
            MessageKind::PasswordReset,
            Channel::Email,
            Language::En,
            &data,
            &ctx(),
        )
        .unwrap() else {
            panic!()
        };
        assert!(
            text.starts_with("Hello,"),
            "no single name for a family: {text}"
        );
        for part in [
            "more than one account",
            "https://portal.example/reset?token=one",
            "https://portal.example/reset?token=two",
            "482913",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
        assert!(html.contains("Reset the password for sarah.t"));
        assert!(html.contains("Reset the password for ethan.t"));
        let kept = data.redacted();
        assert!(kept.account_links.iter().all(|l| l.link.is_empty()));
        assert_eq!(kept.account_links[0].username, "sarah.t");
    }

    #[test]
    fn a_voice_call_spells_the_username_twice() {
        let data = MessageData {
            usernames: vec!["ana_m.2".into()],
            ..MessageData::default()
        };
        let Rendered::Voice { twiml } = render(
            MessageKind::UsernameReminder,
            Channel::Voice,
            Language::Es,
            &data,
            &ctx(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            twiml.matches("a, n, a, guion bajo, m, punto, 2.").count(),
            2,
            "{twiml}"
        );
    }

    #[test]
    fn a_staff_reset_link_by_sms_is_the_link_alone() {
        let data = MessageData {
            code: None,
            ..reset()
        };
        let Rendered::Sms { body } = render(
            MessageKind::PasswordReset,
            Channel::Sms,
            Language::En,
            &data,
            &ctx(),
        )
        .unwrap() else {
            panic!()
        };
        assert!(
            body.contains("https://portal.example/reset?token=abc") && body.len() < 320,
            "{body}"
        );
    }
}
