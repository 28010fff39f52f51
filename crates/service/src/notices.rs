//! Telling account holders what happened to their account: one message to
//! each verified contact (email by email, phone by text message), in the
//! patient's language. Notices ride in the transaction of the change.

use crate::{ServiceResult, Services};
use carekey_domain::ids::{AccountId, MessageId};
use carekey_domain::message::{Channel, MessageData, MessageKind, NewMessage};
use carekey_domain::ports::NoticeContacts;

/// One `kind` message to every verified contact in `contacts`.
pub fn notices(
    contacts: &NoticeContacts,
    kind: MessageKind,
    data: &MessageData,
) -> Vec<NewMessage> {
    contacts
        .verified
        .iter()
        .map(|(contact_kind, value)| NewMessage {
            id: MessageId::generate(),
            kind,
            channel: if contact_kind == "email" {
                Channel::Email
            } else {
                Channel::Sms
            },
            recipient: value.clone(),
            language: contacts.language,
            patient_id: Some(contacts.patient_id),
            data: MessageData {
                given_name: Some(contacts.given_name.clone()),
                ..data.clone()
            },
        })
        .collect()
}

impl Services {
    /// The "clinic staff helped with your account" notices for `action`
    /// (`code`, `unlock` or `disable`).
    pub(crate) async fn help_notices(
        &self,
        account: AccountId,
        action: &str,
    ) -> ServiceResult<Vec<NewMessage>> {
        let contacts = self.store.notice_contacts(account).await?;
        let data = MessageData {
            action: Some(action.to_owned()),
            ..MessageData::default()
        };
        Ok(notices(&contacts, MessageKind::AccountHelp, &data))
    }

    /// The "sign-in is paused" notices queued if a failed password locks the
    /// account, each with a link to start a reset (never a token: anyone can
    /// cause a lock).
    pub(crate) async fn lock_notices(&self, account: AccountId) -> ServiceResult<Vec<NewMessage>> {
        let contacts = self.store.notice_contacts(account).await?;
        let data = MessageData {
            link: Some(self.settings.link("/forgot-password")),
            ..MessageData::default()
        };
        Ok(notices(&contacts, MessageKind::AccountLocked, &data))
    }
}
