-- Two-factor sign-in: one TOTP authenticator per account and its single-use recovery codes.

CREATE TABLE account_totp (
    account_id       uuid PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    -- AES-256-GCM of the base32 secret: version byte || 12-byte nonce || ciphertext+tag, with
    -- the account id as associated data (a row copied to another account does not decrypt).
    -- The key is derived from SECRET_KEY and never stored here.
    secret_encrypted bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- NULL while enrollment waits for its first code; set when two-factor sign-in is on.
    enabled_at       timestamptz
);

CREATE TABLE account_recovery_codes (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    -- HMAC-SHA-256 (key derived from SECRET_KEY) over the account id and the normalized code.
    code_hash  bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    CONSTRAINT account_recovery_codes_hash_key UNIQUE (account_id, code_hash)
);
