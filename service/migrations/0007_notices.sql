-- Notices of checks and account changes, by email and webhook: a transactional outbox.

-- The language of the account's last sign-in, for the emails it is sent.
ALTER TABLE accounts ADD COLUMN language text NOT NULL DEFAULT 'en';
ALTER TABLE accounts ADD CONSTRAINT accounts_language_known CHECK (language IN ('en', 'sv'));

-- One row per audit event that calls for a notice, per channel, written in the same
-- statement as the event's row: a notice exists exactly when its event committed. What it
-- says is read from the event at delivery; nothing secret is stored here.
CREATE TABLE notices (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        uuid NOT NULL,
    channel         text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- A delivery in progress: other instances leave the row alone until then.
    lease_until     timestamptz,
    give_up_at      timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CONSTRAINT notices_channel_known CHECK (channel IN ('email', 'webhook')),
    CONSTRAINT notices_status_known CHECK (status IN ('pending', 'delivered', 'failed'))
);

CREATE INDEX notices_due_idx ON notices (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notices_status_idx ON notices (status, created_at DESC);
