-- One normalization of email addresses (service/emails.py), and look-alikes refused.

-- The UTS #39 confusable skeleton of each new account's email: a new address whose skeleton
-- is an existing account's is refused as taken. Computed in Python at sign-up; NULL for the
-- accounts made before this migration (NULLs never collide under UNIQUE).
ALTER TABLE accounts ADD COLUMN email_skeleton text;
ALTER TABLE accounts ADD CONSTRAINT accounts_email_skeleton_key UNIQUE (email_skeleton);

-- Addresses are case-folded by Unicode's rules (str.casefold), no longer by PostgreSQL's
-- lower(): the two disagree (casefold maps Cherokee small letters to capitals, which lower()
-- in a UTF-8 locale maps back), so the check keeps only what both promise: no ASCII capitals.
ALTER TABLE accounts DROP CONSTRAINT accounts_email_normalized;
ALTER TABLE accounts ADD CONSTRAINT accounts_email_normalized
    CHECK (email = lower(email COLLATE "C"));
