-- CareKey schema (SQLite). Times are Unix milliseconds (UTC); ids are UUIDs as
-- 16-byte blobs; secrets appear only as SHA-256 or Argon2id hashes.

CREATE TABLE org_policy (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    document    TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE patients (
    id                  BLOB    PRIMARY KEY,
    mrn                 TEXT    NOT NULL UNIQUE,
    given_name          TEXT    NOT NULL,
    family_name         TEXT    NOT NULL,
    date_of_birth       TEXT    NOT NULL,
    postal_code         TEXT,
    preferred_language  TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX patients_family_name ON patients (family_name COLLATE NOCASE);
CREATE INDEX patients_date_of_birth ON patients (date_of_birth);

CREATE TABLE contacts (
    patient_id   BLOB    NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    kind         TEXT    NOT NULL CHECK (kind IN ('email', 'phone')),
    value        TEXT    NOT NULL,
    verified_by  TEXT    CHECK (verified_by IN ('code', 'staff')),
    verified_at  INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (patient_id, kind)
);
CREATE INDEX contacts_by_value ON contacts (kind, value);

CREATE TABLE portal_accounts (
    id                         BLOB    PRIMARY KEY,
    patient_id                 BLOB    NOT NULL UNIQUE REFERENCES patients (id),
    username                   TEXT    NOT NULL UNIQUE,
    password_hash              TEXT    NOT NULL,
    password_changed_at        INTEGER NOT NULL,
    status                     TEXT    NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason            TEXT,
    failed_attempts            INTEGER NOT NULL DEFAULT 0,
    failure_window_started_at  INTEGER,
    locked_until               INTEGER,
    lock_held                  BOOLEAN NOT NULL DEFAULT FALSE,
    consecutive_lockouts       INTEGER NOT NULL DEFAULT 0,
    last_sign_in_at            INTEGER,
    created_at                 INTEGER NOT NULL
);

CREATE TABLE password_history (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     BLOB    NOT NULL REFERENCES portal_accounts (id) ON DELETE CASCADE,
    password_hash  TEXT    NOT NULL,
    set_at         INTEGER NOT NULL
);
CREATE INDEX password_history_by_account ON password_history (account_id, set_at);

CREATE TABLE staff_users (
    id                 BLOB    PRIMARY KEY,
    username           TEXT    NOT NULL UNIQUE,
    role               TEXT    NOT NULL CHECK (role IN ('front_desk', 'portal_admin', 'auditor')),
    password_hash      TEXT    NOT NULL,
    totp_secret        TEXT,
    totp_confirmed_at  INTEGER,
    disabled           BOOLEAN NOT NULL DEFAULT FALSE,
    failed_attempts            INTEGER NOT NULL DEFAULT 0,
    failure_window_started_at  INTEGER,
    locked_until               INTEGER,
    lock_held                  BOOLEAN NOT NULL DEFAULT FALSE,
    consecutive_lockouts       INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash              BLOB    PRIMARY KEY,
    owner_kind           TEXT    NOT NULL CHECK (owner_kind IN ('patient', 'staff')),
    account_id           BLOB    REFERENCES portal_accounts (id),
    staff_id             BLOB    REFERENCES staff_users (id),
    created_at           INTEGER NOT NULL,
    last_seen_at         INTEGER NOT NULL,
    idle_expires_at      INTEGER NOT NULL,
    absolute_expires_at  INTEGER NOT NULL,
    revoked_at           INTEGER,
    ip                   TEXT,
    user_agent           TEXT,
    CHECK ((owner_kind = 'patient') = (account_id IS NOT NULL)),
    CHECK ((owner_kind = 'staff') = (staff_id IS NOT NULL))
);
CREATE INDEX sessions_by_account ON sessions (account_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_by_staff ON sessions (staff_id) WHERE revoked_at IS NULL;

-- A recovery request. account_id is NULL for a decoy flow (nothing matched), which
-- behaves like a real flow whose code is never right.
CREATE TABLE recovery_flows (
    id             BLOB    PRIMARY KEY,
    account_id     BLOB    REFERENCES portal_accounts (id),
    purpose        TEXT    NOT NULL CHECK (purpose IN ('password', 'username', 'contact')),
    channel        TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'voice')),
    code_hash      BLOB,
    attempts_left  INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    revoked_at     INTEGER,
    client_ip      TEXT
);
CREATE INDEX recovery_flows_by_account ON recovery_flows (account_id, purpose);

-- Single-use secrets bound to one account and purpose: reset tokens (from links or
-- verified codes), staff-issued codes, activation codes, enrollment tokens.
CREATE TABLE account_tokens (
    hash           BLOB    PRIMARY KEY,
    purpose        TEXT    NOT NULL CHECK (purpose IN ('reset', 'staff_code', 'activation', 'enrollment')),
    account_id     BLOB    REFERENCES portal_accounts (id),
    patient_id     BLOB    REFERENCES patients (id),
    flow_id        BLOB    REFERENCES recovery_flows (id),
    attempts_left  INTEGER,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    revoked_at     INTEGER
);
CREATE INDEX account_tokens_by_account ON account_tokens (account_id, purpose);
CREATE INDEX account_tokens_by_patient ON account_tokens (patient_id, purpose);

CREATE TABLE outbox_messages (
    id               BLOB    PRIMARY KEY,
    kind             TEXT    NOT NULL,
    channel          TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'voice')),
    recipient        TEXT    NOT NULL,
    language         TEXT    NOT NULL,
    patient_id       BLOB    REFERENCES patients (id),
    payload          TEXT    NOT NULL,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'bounced')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_until      INTEGER,
    last_error       TEXT,
    provider_id      TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox_messages (status, next_attempt_at);
CREATE INDEX outbox_by_patient ON outbox_messages (patient_id, created_at);

-- Fixed-window counters for rate limits, keyed on values that never depend on
-- whether an account exists (a normalised identifier, a client address).
CREATE TABLE rate_limits (
    key           TEXT    PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL
);

-- Append-only and hash-chained: each event's hash covers its fields and the
-- previous event's hash; audit_chain_head holds the last link.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_id    BLOB,
    action      TEXT    NOT NULL,
    account_id  BLOB,
    patient_id  BLOB,
    ip          TEXT,
    outcome     TEXT    NOT NULL,
    details     TEXT    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL
);
CREATE INDEX audit_by_patient ON audit_events (patient_id, at);
CREATE INDEX audit_by_action ON audit_events (action, at);

CREATE TABLE audit_chain_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB    NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, zeroblob(32));
