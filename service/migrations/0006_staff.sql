-- Support staff as people (roles, their own sign-in), API keys that expire and can be
-- reused by name once revoked, and a case reference and actor on audit rows.

CREATE TABLE staff (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email            text NOT NULL,
    name             text NOT NULL,
    role             text NOT NULL,
    source           text NOT NULL,
    -- Built-in staff: an argon2 hash and an AES-GCM encrypted TOTP secret (service/staff.py);
    -- NULL until the set-up link is used. Staff from single sign-on have neither.
    password_hash    text,
    totp_secret      bytea,
    totp_enabled_at  timestamptz,
    -- The set-up link's secret, as a keyed digest: single use, valid until setup_expires_at.
    setup_digest     bytea,
    setup_expires_at timestamptz,
    sso_issuer       text,
    sso_subject      text,
    disabled_at      timestamptz,
    last_sign_in_at  timestamptz,
    -- Bumped when the person is disabled or their role changes: sessions made before end.
    session_epoch    integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT staff_email_key UNIQUE (email),
    CONSTRAINT staff_sso_key UNIQUE (sso_issuer, sso_subject),
    CONSTRAINT staff_role_known CHECK (role IN ('agent', 'supervisor', 'admin')),
    CONSTRAINT staff_source_known CHECK (source IN ('sso', 'builtin')),
    CONSTRAINT staff_email_normalized CHECK (email = lower(email COLLATE "C"))
);

CREATE UNIQUE INDEX staff_setup_digest_key ON staff (setup_digest) WHERE setup_digest IS NOT NULL;

-- API keys (the `agents` table): an optional expiry, when last used, and a name that is
-- unique among keys not revoked, so a revoked key's name can be given to a new key.
ALTER TABLE agents ADD COLUMN expires_at timestamptz;
ALTER TABLE agents ADD COLUMN last_used_at timestamptz;
ALTER TABLE agents DROP CONSTRAINT agents_name_key;
CREATE UNIQUE INDEX agents_active_name_key ON agents (name) WHERE revoked_at IS NULL;

-- Who acted (a staff member's email, `key:<name>` for an API key, `cli` for the command
-- line), the case a check belongs to, and what an administrative action was done to.
ALTER TABLE audit_events ADD COLUMN actor text;
ALTER TABLE audit_events ADD COLUMN case_ref text;
ALTER TABLE audit_events ADD COLUMN target text;

CREATE INDEX audit_events_actor_idx ON audit_events (actor, id DESC) WHERE actor IS NOT NULL;
CREATE INDEX audit_events_case_ref_idx ON audit_events (case_ref, id DESC)
    WHERE case_ref IS NOT NULL;
CREATE INDEX audit_events_type_idx ON audit_events (type, id DESC);
