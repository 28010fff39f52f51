//! Operator steps on records and accounts: creating patients, their portal
//! accounts and staff users, and lifting a lock.

use crate::passwords::Replacing;
use crate::signin::internal;
use crate::{ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::Username;
use carekey_domain::ids::{AccountId, PatientId, StaffId};
use carekey_domain::model::{NewAccount, NewPatient, NewStaff, StaffRole};
use carekey_domain::password_rules::PersonalInfo;
use carekey_domain::secret::Password;
use serde_json::json;

impl Services {
    /// Adds a patient record, its contacts counted as verified by staff.
    pub async fn create_patient(
        &self,
        patient: &NewPatient,
        actor: Actor,
    ) -> ServiceResult<PatientId> {
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::PatientCreated,
            Outcome::Success,
        )
        .details(json!({ "mrn": patient.mrn }));
        Ok(self.store.create_patient(patient, event).await?)
    }

    /// Gives a patient a portal account with the password they chose.
    pub async fn create_account(
        &self,
        patient_id: PatientId,
        username: Username,
        password: &Password,
        actor: Actor,
    ) -> ServiceResult<AccountId> {
        let personal = PersonalInfo {
            username: Some(username.as_str().to_owned()),
            ..PersonalInfo::default()
        };
        self.require_acceptable(password, &personal, Replacing::Nothing, &[])
            .await?;
        let password_hash = self.hasher.hash(password).await.map_err(internal)?;
        let account = NewAccount {
            patient_id,
            username,
            password_hash,
        };
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::AccountCreated,
            Outcome::Success,
        );
        Ok(self.store.create_account(&account, event).await?)
    }

    /// Adds a staff user (`carekey staff add`).
    pub async fn create_staff(
        &self,
        username: Username,
        role: StaffRole,
        password: &Password,
        actor: Actor,
    ) -> ServiceResult<StaffId> {
        let personal = PersonalInfo {
            username: Some(username.as_str().to_owned()),
            ..PersonalInfo::default()
        };
        self.require_acceptable(password, &personal, Replacing::Nothing, &[])
            .await?;
        let staff = NewStaff {
            id: StaffId::generate(),
            username,
            role,
            password_hash: self.hasher.hash(password).await.map_err(internal)?,
        };
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::StaffCreated,
            Outcome::Success,
        )
        .details(json!({ "staff_id": staff.id, "username": staff.username, "role": role }));
        self.store.create_staff(&staff, event).await?;
        Ok(staff.id)
    }

    /// Stops an account from signing in and ends its sessions.
    pub async fn disable_account(
        &self,
        username: &Username,
        reason: &str,
        actor: Actor,
    ) -> ServiceResult<AccountId> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ServiceError::invalid(
                "reason",
                "must say why the account is disabled",
            ));
        }
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::AccountDisabled,
            Outcome::Success,
        )
        .details(json!({ "reason": reason }));
        let notices = match self.account_named(username).await? {
            Some(account) => self.help_notices(account, "disable").await?,
            None => Vec::new(),
        };
        Ok(self
            .store
            .disable_account(username, reason, &notices, event)
            .await?)
    }

    /// Lifts a lock and clears the failure count (`carekey unlock`).
    pub async fn unlock_account(
        &self,
        username: &Username,
        actor: Actor,
        details: serde_json::Value,
    ) -> ServiceResult<AccountId> {
        let event = AuditEvent::new(
            self.clock.now(),
            actor,
            AuditAction::AccountUnlocked,
            Outcome::Success,
        )
        .details(details);
        let notices = match self.account_named(username).await? {
            Some(account) => self.help_notices(account, "unlock").await?,
            None => Vec::new(),
        };
        Ok(self.store.unlock_account(username, &notices, event).await?)
    }

    /// Ends every session of one patient (`Some(username)`) or of everyone,
    /// patients and staff (`carekey sessions end`); how many ended. An
    /// unknown username is `NotFound`.
    pub async fn end_sessions(&self, username: Option<&Username>) -> ServiceResult<u64> {
        let account = match username {
            Some(username) => Some(
                self.account_named(username)
                    .await?
                    .ok_or(ServiceError::NotFound)?,
            ),
            None => None,
        };
        let event = AuditEvent::new(
            self.clock.now(),
            Actor::System,
            AuditAction::SessionEnded,
            Outcome::Success,
        )
        .details(serde_json::json!({
            "reason": if account.is_some() { "operator_ended_account_sessions" } else { "operator_ended_all_sessions" },
            "via": "command_line",
        }));
        Ok(self.store.revoke_all_sessions(account, event).await?)
    }

    /// The account with this username, if any.
    async fn account_named(&self, username: &Username) -> ServiceResult<Option<AccountId>> {
        let login = carekey_domain::identifiers::Login::Username(username.clone());
        Ok(self
            .store
            .find_accounts_for_sign_in(&login)
            .await?
            .first()
            .map(|account| account.id))
    }
}
