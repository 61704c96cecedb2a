-- Accounts, agents and the append-only audit log.

CREATE TABLE accounts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         text NOT NULL,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_email_normalized CHECK (email = lower(email)),
    CONSTRAINT accounts_email_key UNIQUE (email)
);

CREATE TABLE agents (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    -- SHA-256 of the API key: keys are 256-bit random, so a fast hash is enough.
    key_hash   bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT agents_name_key UNIQUE (name),
    CONSTRAINT agents_key_hash_key UNIQUE (key_hash)
);

-- No foreign keys: the audit trail outlives whatever it mentions.
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    type        text NOT NULL,
    account_id  uuid,
    agent_id    uuid,
    agent_name  text,
    -- Why a verification failed (wrong, locked_out, unknown_account); never the PIN.
    reason      text,
    request_id  text
);

CREATE INDEX audit_events_account_idx ON audit_events (account_id, id DESC)
    WHERE account_id IS NOT NULL;

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;

CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
