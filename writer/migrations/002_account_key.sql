-- Accounts are reused by the key the matcher resolves company names by
-- (case, punctuation and legal suffixes folded: "Acme, Inc." is "Acme Inc"),
-- not only by trimmed, case-folded name. Rows written before this migration
-- have no key and are still found by that name.
ALTER TABLE accounts ADD COLUMN name_key text;
CREATE INDEX accounts_by_key ON accounts (tenant, name_key);
