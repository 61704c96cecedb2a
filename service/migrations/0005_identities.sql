-- Accounts linked to a company's OpenID Connect provider.

-- An account made by the provider has no password of ours; one whose provider did not vouch
-- for its address has no email (agents find it by the provider's subject instead).
ALTER TABLE accounts ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE accounts ALTER COLUMN email DROP NOT NULL;

-- One row per (issuer, subject) the provider has signed in: the provider's stable name for a
-- person, never their email, which can change or be reassigned.
CREATE TABLE account_identities (
    issuer     text NOT NULL,
    subject    text NOT NULL,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX account_identities_account_idx ON account_identities (account_id);
