-- The CRM mirror: leads, contacts, accounts and opportunities as a CRM holds
-- them, their related notes and attachments, and the writer's own bookkeeping
-- (applied commands, newest cluster version seen, reviews, deleted records).

CREATE TABLE accounts (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL DEFAULT '',
    fields      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    modified_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
-- "create or reuse": an account is reused by trimmed, case-folded name.
CREATE INDEX accounts_by_name ON accounts (tenant, lower(btrim(name)));

CREATE TABLE contacts (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    account_id  text,
    fields      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    modified_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE leads (
    tenant                   text        NOT NULL,
    id                       text        NOT NULL,
    fields                   jsonb       NOT NULL DEFAULT '{}',
    created_at               timestamptz NOT NULL,
    modified_at              timestamptz NOT NULL,
    is_converted             boolean     NOT NULL DEFAULT false,
    status                   text,
    converted_contact_id     text,
    converted_account_id     text,
    converted_opportunity_id text,
    converted_at             timestamptz,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX leads_by_converted_contact ON leads (tenant, converted_contact_id) WHERE converted_contact_id IS NOT NULL;

CREATE TABLE opportunities (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    name        text        NOT NULL,
    account_id  text,
    contact_id  text,
    lead_id     text,
    fields      jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Notes, attachments, docs and files; parent_object is lead, contact or account.
CREATE TABLE related (
    tenant        text        NOT NULL,
    id            text        NOT NULL,
    parent_object text        NOT NULL CHECK (parent_object IN ('lead', 'contact', 'account')),
    parent_id     text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('note', 'attachment', 'doc', 'file')),
    title         text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX related_by_parent ON related (tenant, parent_object, parent_id);

-- The recycle bin: when a record was deleted and into which one it merged.
CREATE TABLE deleted_records (
    tenant      text        NOT NULL,
    object      text        NOT NULL,
    id          text        NOT NULL,
    merged_into text,
    deleted_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant, object, id)
);

CREATE TABLE applied_commands (
    command_id      text        PRIMARY KEY,
    tenant          text        NOT NULL,
    kind            text        NOT NULL,
    cluster_id      text        NOT NULL,
    cluster_version bigint      NOT NULL,
    seq             integer     NOT NULL,
    outcome         text        NOT NULL CHECK (outcome IN ('applied', 'stale', 'failed')),
    reason          text        NOT NULL DEFAULT '',
    -- records the command touched, [{object, id}], re-emitted on redelivery
    records         jsonb       NOT NULL DEFAULT '[]',
    applied_at      timestamptz NOT NULL
);

CREATE TABLE cluster_versions (
    tenant     text        NOT NULL,
    cluster_id text        NOT NULL,
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, cluster_id)
);

-- conversion.failed and review.requested: clusters a person should look at.
CREATE TABLE cluster_reviews (
    command_id      text        PRIMARY KEY,
    tenant          text        NOT NULL,
    kind            text        NOT NULL,
    cluster_id      text        NOT NULL,
    cluster_version bigint      NOT NULL,
    reason          text        NOT NULL,
    data            jsonb       NOT NULL,
    created_at      timestamptz NOT NULL
);
CREATE INDEX cluster_reviews_by_cluster ON cluster_reviews (tenant, cluster_id);
