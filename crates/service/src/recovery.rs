//! Self-service recovery (API.md, "Patient: recovery"): a request that answers
//! alike for every well-formed input, codes checked under a lock, resets that
//! use a token once, and the one-time codes staff hand to a patient.
//!
//! Unknown accounts cost the same work as known ones: the same lookup, a decoy
//! flow row, the same counters and an audit event; only the messages differ.

use crate::notices::notices;
use crate::passwords::Replacing;
use crate::signin::internal;
use crate::{ClientInfo, ServiceError, ServiceResult, Services};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::identifiers::{DateOfBirth, Email, PhoneE164, Username};
use carekey_domain::ids::{AccountId, FlowId, MessageId};
use carekey_domain::message::{AccountLink, Channel, MessageData, MessageKind, NewMessage};
use carekey_domain::model::Language;
use carekey_domain::policy::Policy;
use carekey_domain::ports::{
    CodeAttempt, FlowParcel, FlowSummary, NewRecoveryFlow, NewToken, PasswordReset,
    StaffCodeRedemption, TokenRecord, TokenState,
};
use carekey_domain::rate_limit::RateLimit;
use carekey_domain::recovery::{
    code_hash, crockford_code, decoy_destination, destinations, lifetime, normalise_crockford,
    normalise_numeric_code, numeric_code, request_fits, AttemptOutcome, Destination, Purpose,
    RecoveryIdentifiers, CODE_DIGITS, RESET_AFTER_CODE_MINUTES, STAFF_CODE_LENGTH,
};
use carekey_domain::secret::Password;
use carekey_domain::token::{OpaqueToken, TokenHash, TokenPurpose};
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use tracing::instrument;

/// A recovery request as the patient typed it.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub purpose: Purpose,
    pub channel: Channel,
    pub username: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub date_of_birth: Option<String>,
    /// The language asked for (`locale`, `?lang=`): it wins over the patient's own.
    pub language: Option<Language>,
    /// The browser's language, used when neither the request nor the patient names one.
    pub fallback_language: Option<Language>,
}

/// The answer to every well-formed request, known account or not.
#[derive(Debug, Clone)]
pub struct RecoveryStarted {
    pub flow_id: FlowId,
    pub expires_at: DateTime<Utc>,
}

/// A reset token handed to the holder of a verified code, for one account.
#[derive(Debug)]
pub struct ResetGrant {
    pub username: String,
    pub reset_token: OpaqueToken,
    pub expires_at: DateTime<Utc>,
}

/// What a page needs to know about a flow. A decoy reads like a real one.
#[derive(Debug, Clone)]
pub struct FlowView {
    pub purpose: Purpose,
    pub channel: Channel,
    pub attempts_left: u32,
    pub expires_at: DateTime<Utc>,
    /// Still accepting codes.
    pub open: bool,
}

/// A trimmed value, or `None` when blank.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl RecoveryRequest {
    /// The identifiers, normalised, or why each that was given cannot be read.
    fn identifiers(&self, default_region: &str) -> ServiceResult<RecoveryIdentifiers> {
        let mut problems = BTreeMap::new();
        let mut read = |field: &str, result: Result<(), String>| {
            if let Err(why) = result {
                problems.insert(field.to_owned(), why);
            }
        };
        let mut ids = RecoveryIdentifiers::default();
        if let Some(raw) = given(&self.username) {
            read(
                "username",
                Username::parse(raw)
                    .map(|u| ids.username = Some(u))
                    .map_err(|e| e.to_string()),
            );
        }
        if let Some(raw) = given(&self.email) {
            read(
                "email",
                Email::parse(raw)
                    .map(|e| ids.email = Some(e))
                    .map_err(|e| e.to_string()),
            );
        }
        if let Some(raw) = given(&self.phone) {
            read(
                "phone",
                PhoneE164::parse(raw, default_region)
                    .map(|p| ids.phone = Some(p))
                    .map_err(|e| e.to_string()),
            );
        }
        if let Some(raw) = given(&self.date_of_birth) {
            read(
                "date_of_birth",
                DateOfBirth::parse(raw)
                    .map(|d| ids.date_of_birth = Some(d))
                    .map_err(|e| e.to_string()),
            );
        }
        if problems.is_empty() {
            Ok(ids)
        } else {
            Err(ServiceError::InvalidRequest(problems))
        }
    }
}

/// What a request may carry under the policy, said plainly for a `422`.
fn accepted_combinations(policy: &Policy, purpose: Purpose) -> String {
    if purpose == Purpose::Username {
        return "give an email or a phone (and date_of_birth where the policy asks for it), no username".into();
    }
    let combos: Vec<String> = policy
        .recovery
        .identifiers
        .iter()
        .map(|combo| combo.join(" + "))
        .collect();
    format!("give one of: {}", combos.join("; "))
}

impl Services {
    /// `POST /api/v1/recovery`. Every well-formed request gets a flow; only
    /// matching accounts with the channel verified on file get a message.
    /// Answers no sooner than the recovery floor ([`crate::answer_floor`]), so the time taken
    /// says nothing about whether an account matched.
    #[instrument(skip_all, fields(purpose = request.purpose.as_str(), channel = request.channel.as_str()))]
    pub async fn request_recovery(
        &self,
        request: &RecoveryRequest,
        client: &ClientInfo,
    ) -> ServiceResult<RecoveryStarted> {
        self.floors
            .recovery
            .hold(self.start_recovery(request, client))
            .await
    }

    async fn start_recovery(
        &self,
        request: &RecoveryRequest,
        client: &ClientInfo,
    ) -> ServiceResult<RecoveryStarted> {
        let policy = self.store.load_policy().await?;
        let identifiers = request.identifiers(&self.settings.default_region)?;
        if !policy
            .recovery
            .channels
            .iter()
            .any(|c| c == request.channel.as_str())
        {
            return Err(ServiceError::invalid(
                "channel",
                "this channel is not offered by the organisation",
            ));
        }
        if !request_fits(
            &policy.recovery,
            request.purpose == Purpose::Username,
            &identifiers.names(),
        ) {
            return Err(ServiceError::invalid(
                "identifiers",
                accepted_combinations(&policy, request.purpose),
            ));
        }
        let candidates = match identifiers.anchor() {
            Some(anchor) => self.store.find_recovery_candidates(&anchor).await?,
            None => Vec::new(),
        };
        let mut found = destinations(candidates, &identifiers, request.channel);
        let decoy = found.is_empty();
        if decoy {
            found.push(decoy_destination(&identifiers, request.purpose));
        }

        let now = self.clock.now();
        let flow_id = FlowId::generate();
        let expires_at = now + lifetime(&policy.recovery, request.channel);
        let parcels = found
            .into_iter()
            .map(|destination| FlowParcel {
                decoy,
                ..self.parcel(request, flow_id, expires_at, now, destination)
            })
            .collect();
        let flow = NewRecoveryFlow {
            id: flow_id,
            purpose: request.purpose,
            channel: request.channel,
            attempts: policy.recovery.code_attempts,
            created_at: now,
            expires_at,
            client_ip: client.ip.clone(),
            lookup_key: identifiers.lookup_key(request.purpose),
            parcels,
            contact: None,
            notices: Vec::new(),
            per_destination: RateLimit::new(
                "recovery:to:",
                policy.recovery.per_account_per_hour,
                Duration::hours(1),
            ),
        };
        let audit = AuditEvent::new(
            now,
            Actor::Anonymous,
            AuditAction::RecoveryRequested,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({
            "flow": flow_id.0,
            "purpose": request.purpose.as_str(),
            "channel": request.channel.as_str(),
            "identifiers": identifiers.names(),
        }));
        let limits = recovery_limits(&policy, &identifiers, client);
        match self.store.start_recovery(&flow, &limits, audit).await? {
            Ok(_) => Ok(RecoveryStarted {
                flow_id,
                expires_at,
            }),
            Err(wait) => Err(ServiceError::from(wait)),
        }
    }

    /// The message, code and links for one destination of a flow.
    pub(crate) fn parcel(
        &self,
        request: &RecoveryRequest,
        flow: FlowId,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
        destination: Destination,
    ) -> FlowParcel {
        let Destination {
            recipient,
            accounts,
        } = destination;
        let first = &accounts[0];
        let mut data = MessageData {
            given_name: (accounts.len() == 1).then(|| first.given_name.clone()),
            valid_minutes: u32::try_from((expires_at - now).num_minutes()).ok(),
            ..MessageData::default()
        };
        let mut code_hash_sent = None;
        let mut links = Vec::new();
        match request.purpose {
            Purpose::Username => {
                data.usernames = accounts.iter().map(|a| a.username.clone()).collect();
                data.valid_minutes = None;
            }
            Purpose::Password | Purpose::Contact => {
                let code = numeric_code(CODE_DIGITS);
                code_hash_sent = Some(code_hash(flow, &code));
                data.code = Some(code);
                if request.purpose == Purpose::Password && request.channel == Channel::Email {
                    for account in &accounts {
                        let token = OpaqueToken::generate();
                        let link = self
                            .settings
                            .link(&format!("/reset?token={}", token.expose()));
                        links.push(NewToken {
                            hash: token.hash(),
                            purpose: TokenPurpose::Reset,
                            account: Some(account.account_id),
                            patient: Some(account.patient_id),
                            flow: Some(flow),
                            attempts: None,
                            expires_at,
                        });
                        data.account_links.push(AccountLink {
                            username: account.username.clone(),
                            link,
                        });
                    }
                    if data.account_links.len() == 1 {
                        data.link = data.account_links.pop().map(|l| l.link);
                    }
                }
            }
        }
        let kind = match request.purpose {
            Purpose::Password => MessageKind::PasswordReset,
            Purpose::Username => MessageKind::UsernameReminder,
            Purpose::Contact => MessageKind::ContactVerification,
        };
        let language = request
            .language
            .or(first.language)
            .or(request.fallback_language)
            .unwrap_or_default();
        FlowParcel {
            message: NewMessage {
                id: MessageId::generate(),
                kind,
                channel: request.channel,
                recipient: recipient.clone(),
                language,
                patient_id: Some(first.patient_id),
                data,
            },
            accounts: accounts
                .iter()
                .map(|a| (a.account_id, a.patient_id))
                .collect(),
            recipient,
            code_hash: code_hash_sent,
            links,
            decoy: false,
        }
    }

    /// What the code-entry page shows about a flow; `None` for an unknown id.
    pub async fn recovery_flow(&self, flow_id: &str) -> ServiceResult<Option<FlowView>> {
        let Ok(id) = flow_id.parse::<uuid::Uuid>() else {
            return Ok(None);
        };
        let now = self.clock.now();
        Ok(self
            .store
            .recovery_flow(FlowId(id))
            .await?
            .map(|flow| FlowView {
                open: is_open(&flow, now),
                purpose: flow.purpose,
                channel: flow.channel,
                attempts_left: flow.attempts_left,
                expires_at: flow.expires_at,
            }))
    }

    /// `POST /api/v1/recovery/{flow_id}/verify`: a code for a flow. Accepted,
    /// it yields one reset token per account it unlocks.
    #[instrument(skip_all)]
    pub async fn verify_recovery_code(
        &self,
        flow_id: &str,
        code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Vec<ResetGrant>> {
        let Ok(id) = flow_id.parse::<uuid::Uuid>() else {
            return Err(ServiceError::FlowExpired);
        };
        let flow = FlowId(id);
        let Some(summary) = self.store.recovery_flow(flow).await? else {
            return Err(ServiceError::FlowExpired);
        };
        let now = self.clock.now();
        let expires_at = now + Duration::minutes(RESET_AFTER_CODE_MINUTES);
        let tokens: Vec<(AccountId, String, OpaqueToken)> = summary
            .accounts
            .into_iter()
            .map(|(account, username)| (account, username, OpaqueToken::generate()))
            .collect();
        let attempt = CodeAttempt {
            flow,
            code_hash: normalise_numeric_code(code).map(|code| code_hash(flow, &code)),
            at: now,
            offers: tokens
                .iter()
                .map(|(account, _, token)| NewToken {
                    hash: token.hash(),
                    purpose: TokenPurpose::Reset,
                    account: Some(*account),
                    patient: None,
                    flow: Some(flow),
                    attempts: None,
                    expires_at,
                })
                .collect(),
        };
        let audit = AuditEvent::new(
            now,
            Actor::Anonymous,
            AuditAction::RecoveryCodeAccepted,
            Outcome::Success,
        )
        .ip(client.ip.clone())
        .details(json!({ "flow": flow.0 }));
        let result = self.store.attempt_recovery_code(&attempt, audit).await?;
        match result.outcome {
            AttemptOutcome::Gone => Err(ServiceError::FlowExpired),
            AttemptOutcome::Wrong { attempts_left } => Err(ServiceError::InvalidCode {
                attempts_left: Some(attempts_left),
            }),
            AttemptOutcome::Accepted => Ok(tokens
                .into_iter()
                .filter(|(account, _, _)| result.accepted.contains(account))
                .map(|(_, username, reset_token)| ResetGrant {
                    username,
                    reset_token,
                    expires_at,
                })
                .collect()),
        }
    }

    /// A reset token as stored, for the reset page; `None` when unknown.
    pub async fn reset_token(&self, token: &OpaqueToken) -> ServiceResult<Option<TokenRecord>> {
        Ok(self
            .store
            .token(&token.hash(), TokenPurpose::Reset, self.clock.now())
            .await?)
    }

    /// The account a still-usable reset token is for.
    pub async fn reset_token_account(
        &self,
        token: &OpaqueToken,
    ) -> ServiceResult<Option<AccountId>> {
        Ok(self
            .reset_token(token)
            .await?
            .filter(|t| t.state == TokenState::Usable)
            .and_then(|t| t.account))
    }

    /// `POST /api/v1/password/reset`: sets a new password with a reset token,
    /// once. Everything else open on the account dies with it; the patient
    /// is not signed in. Returns the username.
    #[instrument(skip_all)]
    pub async fn reset_password(
        &self,
        token: &OpaqueToken,
        new: &Password,
        confirm: &Password,
        client: &ClientInfo,
    ) -> ServiceResult<String> {
        let Some(account) = self.reset_token_account(token).await? else {
            return Err(ServiceError::TokenExpired);
        };
        if new.expose() != confirm.expose() {
            return Err(ServiceError::PasswordMismatch);
        }
        let policy = self.store.load_policy().await?;
        let context = self
            .store
            .password_context(account, policy.password.history)
            .await?;
        let checked = self
            .require_acceptable(
                new,
                &context.personal,
                Replacing::HashOnly(&context.password_hash),
                &context.history,
            )
            .await;
        if let Err(refused) = checked {
            // A reset racing this one may have used the link meanwhile, and
            // this password was then judged against the new one: a used link
            // answers as used, whatever the password.
            if self.reset_token_account(token).await?.is_none() {
                return Err(ServiceError::TokenExpired);
            }
            return Err(refused);
        }
        let password_hash = self.hasher.hash(new).await.map_err(internal)?;
        let now = self.clock.now();
        let reset = PasswordReset {
            token: token.hash(),
            account,
            password_hash,
            at: now,
            notices: notices(
                &context.notice_contacts(),
                MessageKind::PasswordChanged,
                &MessageData::default(),
            ),
        };
        let event = AuditEvent::new(
            now,
            Actor::Patient(account),
            AuditAction::PasswordReset,
            Outcome::Success,
        )
        .ip(client.ip.clone());
        if !self.store.reset_password(&reset, event).await? {
            return Err(ServiceError::TokenExpired);
        }
        Ok(context.personal.username.unwrap_or_default())
    }

    /// A new email with a fresh link for the account an expired (or used)
    /// link was for — the one-click answer on the expired-link page. `None`
    /// when the token never existed.
    pub async fn renew_reset_link(
        &self,
        token: &OpaqueToken,
        language: Option<Language>,
        client: &ClientInfo,
    ) -> ServiceResult<Option<RecoveryStarted>> {
        let Some(account) = self.reset_token(token).await?.and_then(|t| t.account) else {
            return Ok(None);
        };
        let username = self
            .store
            .password_context(account, 0)
            .await?
            .personal
            .username;
        let request = RecoveryRequest {
            purpose: Purpose::Password,
            channel: Channel::Email,
            username,
            email: None,
            phone: None,
            date_of_birth: None,
            language,
            fallback_language: None,
        };
        self.request_recovery(&request, client).await.map(Some)
    }

    /// A one-time code for staff to read out or print: Crockford base 32,
    /// single use, alive for the policy's hours, replacing any older one.
    /// The staff console calls this with the staff member as `actor` and the
    /// identity check they made in `details`.
    pub async fn issue_staff_code(
        &self,
        account: AccountId,
        actor: Actor,
        details: serde_json::Value,
    ) -> ServiceResult<(String, DateTime<Utc>)> {
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        let code = crockford_code(STAFF_CODE_LENGTH);
        let canonical = normalise_crockford(&code).ok_or_else(|| internal("bad staff code"))?;
        let expires_at = now + Duration::hours(i64::from(policy.staff_code.lifetime_hours));
        let token = NewToken {
            hash: TokenHash::of(&canonical),
            purpose: TokenPurpose::StaffCode,
            account: Some(account),
            patient: None,
            flow: None,
            attempts: Some(policy.recovery.code_attempts),
            expires_at,
        };
        let event = AuditEvent::new(now, actor, AuditAction::StaffCodeIssued, Outcome::Success)
            .details(details);
        let notices = self.help_notices(account, "code").await?;
        self.store.issue_staff_code(&token, &notices, event).await?;
        Ok((code, expires_at))
    }

    /// `POST /api/v1/recovery/staff-code`: a staff-issued code with the
    /// patient's date of birth. Every failure is the same `invalid_code`.
    #[instrument(skip_all)]
    pub async fn redeem_staff_code(
        &self,
        code: &str,
        date_of_birth: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Vec<ResetGrant>> {
        let date_of_birth = DateOfBirth::parse(date_of_birth)
            .map_err(|e| ServiceError::invalid("date_of_birth", e.to_string()))?;
        let policy = self.store.load_policy().await?;
        let now = self.clock.now();
        // A code that cannot be one is looked up all the same, and never found.
        let canonical = normalise_crockford(code).unwrap_or_default();
        let reset_token = OpaqueToken::generate();
        let expires_at = now + Duration::minutes(RESET_AFTER_CODE_MINUTES);
        let redemption = StaffCodeRedemption {
            code_hash: TokenHash::of(&canonical),
            date_of_birth,
            at: now,
            offer: NewToken {
                hash: reset_token.hash(),
                purpose: TokenPurpose::Reset,
                account: None,
                patient: None,
                flow: None,
                attempts: None,
                expires_at,
            },
        };
        let limits = [crate::per_address_limit("staff_code", &policy, client)];
        let audit = AuditEvent::new(
            now,
            Actor::Anonymous,
            AuditAction::StaffCodeRedeemed,
            Outcome::Success,
        )
        .ip(client.ip.clone());
        match self
            .store
            .redeem_staff_code(&redemption, &limits, audit)
            .await?
        {
            Err(wait) => Err(ServiceError::from(wait)),
            Ok(None) => Err(ServiceError::InvalidCode {
                attempts_left: None,
            }),
            Ok(Some((_, username))) => Ok(vec![ResetGrant {
                username,
                reset_token,
                expires_at,
            }]),
        }
    }
}

impl Services {
    /// Periodic upkeep: rate-limit counters of windows long past (every
    /// limit's window is at most an hour) are deleted. Returns how many.
    pub async fn housekeeping(&self) -> ServiceResult<u64> {
        let before = self.clock.now() - Duration::days(1);
        Ok(self.store.purge_rate_limits(before).await?)
    }
}

/// Whether a flow still takes codes at `now`.
fn is_open(flow: &FlowSummary, now: DateTime<Utc>) -> bool {
    !flow.finished && !flow.revoked && flow.attempts_left > 0 && now < flow.expires_at
}

/// The counters a recovery request bumps (DESIGN.md): each client address,
/// and each identifier given, never whether an account exists.
fn recovery_limits(
    policy: &Policy,
    identifiers: &RecoveryIdentifiers,
    client: &ClientInfo,
) -> Vec<RateLimit> {
    let hour = Duration::hours(1);
    let per_identifier = policy.recovery.per_account_per_hour;
    let mut limits = vec![crate::per_address_limit("recovery", policy, client)];
    let keyed = [
        (
            "username",
            identifiers.username.as_ref().map(|u| u.as_str()),
        ),
        ("email", identifiers.email.as_ref().map(|e| e.as_str())),
        ("phone", identifiers.phone.as_ref().map(|p| p.as_str())),
    ];
    for (name, value) in keyed {
        if let Some(value) = value {
            limits.push(RateLimit::new(
                format!("recovery:{name}:{value}"),
                per_identifier,
                hour,
            ));
        }
    }
    limits
}
