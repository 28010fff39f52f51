//! SMS and voice through a Twilio-compatible REST provider: texts via the
//! Messages resource, calls via the Calls resource with inline TwiML; and the
//! signature check for the provider's status callbacks.

use crate::render::Rendered;
use crate::senders::{SendError, Sender};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use carekey_domain::message::{MessageRecord, MessageStatus};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// Provider account settings.
#[derive(Debug, Clone)]
pub struct TwilioAccount {
    /// `https://api.twilio.com` or a compatible provider's base.
    pub base_url: String,
    pub account_sid: String,
    pub auth_token: String,
    /// The sending number, E.164.
    pub from: String,
    /// Where the provider reports delivery (`{public_url}/hooks/twilio/status`).
    pub status_callback: Option<String>,
}

/// Which resource a sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioResource {
    Messages,
    Calls,
}

pub struct TwilioSender {
    client: reqwest::Client,
    account: TwilioAccount,
    resource: TwilioResource,
}

#[derive(Deserialize)]
struct Created {
    sid: String,
}

impl TwilioSender {
    pub fn new(account: TwilioAccount, resource: TwilioResource) -> Result<Self, String> {
        Ok(Self {
            client: crate::senders::http_client()?,
            account,
            resource,
        })
    }
}

#[async_trait]
impl Sender for TwilioSender {
    async fn send(
        &self,
        message: &MessageRecord,
        rendered: &Rendered,
    ) -> Result<Option<String>, SendError> {
        let account = &self.account;
        let (resource, content) = match (self.resource, rendered) {
            (TwilioResource::Messages, Rendered::Sms { body }) => ("Messages", ("Body", body)),
            (TwilioResource::Calls, Rendered::Voice { twiml }) => ("Calls", ("Twiml", twiml)),
            _ => return Err(SendError::permanent("rendered for another channel")),
        };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/{resource}.json",
            account.base_url.trim_end_matches('/'),
            account.account_sid
        );
        let mut form = vec![
            ("To", message.recipient.as_str()),
            ("From", account.from.as_str()),
            (content.0, content.1.as_str()),
        ];
        if let Some(callback) = &account.status_callback {
            form.push(("StatusCallback", callback.as_str()));
        }
        let response = self
            .client
            .post(&url)
            .basic_auth(&account.account_sid, Some(&account.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SendError::transient(format!("provider unreachable: {e}")))?;
        let status = response.status();
        if status.is_success() {
            let created: Created = response
                .json()
                .await
                .map_err(|e| SendError::transient(format!("provider answer unreadable: {e}")))?;
            return Ok(Some(created.sid));
        }
        let body: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(300)
            .collect();
        let error = format!("provider answered {status}: {body}");
        if status.as_u16() == 429 || status.is_server_error() {
            Err(SendError::transient(error))
        } else {
            Err(SendError::permanent(error))
        }
    }
}

/// Twilio's request signature: base64(HMAC-SHA1(auth token, URL + each
/// parameter's name and value, sorted by name)).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (name, value) in sorted {
        data.push_str(name);
        data.push_str(value);
    }
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether a callback's `X-Twilio-Signature` is the one the token gives.
pub fn signature_is_valid(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    presented: &str,
) -> bool {
    let expected = signature(auth_token, url, params);
    !expected.is_empty() && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}

/// Our status for a provider's message or call status; `None` for in-between states.
pub fn status_of(provider_status: &str) -> Option<MessageStatus> {
    match provider_status {
        "sent" => Some(MessageStatus::Sent),
        "delivered" | "completed" => Some(MessageStatus::Delivered),
        "undelivered" | "failed" | "busy" | "no-answer" | "canceled" => {
            Some(MessageStatus::Bounced)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_twilios_documented_example() {
        // The vector from Twilio's own request-validator tests.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(signature_is_valid(
            "12345",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!signature_is_valid(
            "12346",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }
}
