-- Customers manage their own account: passkeys, and deletion that keeps the audit trail.

CREATE TABLE passkeys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    account_id    uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- The authenticator's credential id (raw bytes), unique across all accounts.
    credential_id bytea NOT NULL,
    public_key    bytea NOT NULL,
    sign_count    bigint NOT NULL DEFAULT 0,
    name          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    CONSTRAINT passkeys_credential_key UNIQUE (credential_id)
);

CREATE INDEX passkeys_account_idx ON passkeys (account_id);

-- A deleted account keeps its row (the audit log's rows name it) but nothing of the person:
-- no address, no password; the audit search shows the pseudonym instead.
ALTER TABLE accounts ADD COLUMN deleted_at timestamptz;
ALTER TABLE accounts ADD COLUMN pseudonym text;

-- A notice to an address the account no longer has (the notice of its deletion); cleared
-- once delivered.
ALTER TABLE notices ADD COLUMN to_address text;
