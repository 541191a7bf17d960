/// The versioned schema of `reach` (SPEC §4). A version, once released, never
/// changes: later changes are new versions appended to `all`.
public struct Migration: Sendable {
    public init(version: Int, name: String, sql: String) {
        self.version = version
        self.name = name
        self.sql = sql
    }

    public let version: Int
    public let name: String
    public let sql: String
}

public enum Migrations {
    public static let all: [Migration] = [
        Migration(version: 1, name: "initial schema", sql: """
        CREATE TABLE IF NOT EXISTS reach.recipients (
            user_id    text PRIMARY KEY,
            name       text,
            phone      text,
            email      text,
            push_token text,
            timezone   text,
            locale     text,
            attrs      jsonb NOT NULL DEFAULT '{}'::jsonb
        );
        CREATE INDEX IF NOT EXISTS recipients_attrs_gin ON reach.recipients USING gin (attrs jsonb_path_ops);

        CREATE TABLE IF NOT EXISTS reach.preferences (
            user_id    text NOT NULL,
            channel    text NOT NULL,
            opted_out  boolean NOT NULL DEFAULT true,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, channel)
        );

        CREATE TABLE IF NOT EXISTS reach.segments (
            id   text PRIMARY KEY,
            name text,
            rule jsonb
        );

        CREATE TABLE IF NOT EXISTS reach.segment_members (
            segment_id text NOT NULL REFERENCES reach.segments(id) ON DELETE CASCADE,
            user_id    text NOT NULL,
            PRIMARY KEY (segment_id, user_id)
        );

        CREATE TABLE IF NOT EXISTS reach.campaigns (
            id           text PRIMARY KEY,
            name         text,
            spec         jsonb NOT NULL,
            state        text NOT NULL DEFAULT 'scheduled'
                         CHECK (state IN ('scheduled', 'running', 'paused', 'done', 'cancelled', 'failed')),
            scheduled_at timestamptz,
            expires_at   timestamptz,
            targeted     bigint NOT NULL DEFAULT 0,
            sent         bigint NOT NULL DEFAULT 0,
            skipped      bigint NOT NULL DEFAULT 0,
            failed       bigint NOT NULL DEFAULT 0,
            dead         bigint NOT NULL DEFAULT 0,
            checkpoint   text,
            error        text,
            owner        text,
            lease_until  timestamptz,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            started_at   timestamptz,
            finished_at  timestamptz
        );
        CREATE INDEX IF NOT EXISTS campaigns_state ON reach.campaigns (state);

        CREATE TABLE IF NOT EXISTS reach.deliveries (
            campaign_id  text NOT NULL,
            user_id      text NOT NULL,
            channel      text,
            status       text NOT NULL
                         CHECK (status IN ('pending', 'scheduled', 'sent', 'failed', 'skipped', 'dead')),
            reason       text,
            attempts     integer NOT NULL DEFAULT 0,
            message_id   text NOT NULL,
            provider_ref text,
            last_error   text,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            sent_at      timestamptz,
            PRIMARY KEY (campaign_id, user_id)
        );
        CREATE INDEX IF NOT EXISTS deliveries_status ON reach.deliveries (campaign_id, status);
        CREATE UNIQUE INDEX IF NOT EXISTS deliveries_message_id ON reach.deliveries (message_id);

        CREATE TABLE IF NOT EXISTS reach.inbox (
            id          bigserial PRIMARY KEY,
            user_id     text NOT NULL,
            campaign_id text NOT NULL,
            title       text,
            body        text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            read_at     timestamptz,
            UNIQUE (campaign_id, user_id)
        );
        CREATE INDEX IF NOT EXISTS inbox_user ON reach.inbox (user_id, created_at DESC);

        CREATE TABLE IF NOT EXISTS reach.dead_letters (
            id           bigserial PRIMARY KEY,
            reason       text NOT NULL,
            error        text,
            source       text NOT NULL CHECK (source IN ('delivery', 'input')),
            campaign_id  text,
            user_id      text,
            channel      text,
            attempts     integer NOT NULL DEFAULT 0,
            failed_at    timestamptz NOT NULL DEFAULT now(),
            payload      jsonb,
            topic        text,
            kafka_partition integer,
            kafka_offset bigint,
            replayed_at  timestamptz
        );
        CREATE INDEX IF NOT EXISTS dead_letters_campaign ON reach.dead_letters (campaign_id, channel, failed_at);
        CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_input_offset
            ON reach.dead_letters (topic, kafka_partition, kafka_offset) WHERE source = 'input';

        CREATE TABLE IF NOT EXISTS reach.triggers (
            id            text PRIMARY KEY,
            event         text NOT NULL,
            channels      jsonb NOT NULL,
            fallback      jsonb NOT NULL DEFAULT '[]'::jsonb,
            template      jsonb NOT NULL,
            delay_seconds integer NOT NULL DEFAULT 0 CHECK (delay_seconds >= 0),
            quiet_hours   boolean NOT NULL DEFAULT true,
            enabled       boolean NOT NULL DEFAULT true,
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX IF NOT EXISTS triggers_event ON reach.triggers (event) WHERE enabled;
        """),
        Migration(version: 2, name: "dead-letter outbox", sql: """
        ALTER TABLE reach.dead_letters ADD COLUMN IF NOT EXISTS published_at timestamptz;
        UPDATE reach.dead_letters SET published_at = failed_at WHERE published_at IS NULL AND source = 'input';
        CREATE INDEX IF NOT EXISTS dead_letters_unpublished ON reach.dead_letters (id) WHERE published_at IS NULL;
        CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_delivery
            ON reach.dead_letters (campaign_id, user_id) WHERE source = 'delivery' AND replayed_at IS NULL;
        """),
        // Benchmark findings: every index on reach.deliveries is paid on each
        // of a campaign's inserts. Only `scheduled` rows are ever looked up by
        // status (pending retries, the stale-row sweep), so a partial index
        // holds just those. message_id is a hash of the primary key (campaign_id,
        // user_id), so its unique index guarded nothing the key does not, and
        // nothing looks rows up by it; it cost a random B-tree insert per row.
        Migration(version: 3, name: "leaner delivery indexes", sql: """
        DROP INDEX IF EXISTS reach.deliveries_status;
        DROP INDEX IF EXISTS reach.deliveries_message_id;
        CREATE INDEX IF NOT EXISTS deliveries_scheduled ON reach.deliveries (campaign_id, updated_at) WHERE status = 'scheduled';
        """),
        // Fencing: every claim of a campaign's lease takes the next epoch, and
        // every write that follows from the lease names the epoch it holds, so
        // a runner that lost its lease (frozen, cut off) has its writes refused.
        Migration(version: 4, name: "campaign lease epochs", sql: """
        ALTER TABLE reach.campaigns ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
        """),
        // An input dead letter must always be storable: jsonb refuses U+0000 and
        // invalid UTF-8, so the message's exact bytes go here when `payload` had
        // to hold a lossy copy (NUL replaced by U+FFFD).
        Migration(version: 5, name: "raw bytes of input dead letters", sql: """
        ALTER TABLE reach.dead_letters ADD COLUMN IF NOT EXISTS raw bytea;
        """),
        // The operator API's trail: one row per /v1 write call, whatever its
        // outcome. The body is stored masked (phones, e-mails, secrets), never a token.
        Migration(version: 6, name: "audit trail", sql: """
        CREATE TABLE IF NOT EXISTS reach.audit (
            id          bigserial PRIMARY KEY,
            at          timestamptz NOT NULL DEFAULT now(),
            token_name  text,
            client      text,
            method      text NOT NULL,
            route       text NOT NULL,
            target      text,
            status      integer NOT NULL,
            body        text
        );
        CREATE INDEX IF NOT EXISTS audit_at ON reach.audit (at);
        CREATE INDEX IF NOT EXISTS campaigns_created ON reach.campaigns (created_at DESC, id DESC);
        """),
        // Recurring campaigns (schedule.cron): a series' own row is never run
        // (the runner skips `recurring` rows); its scheduled_at is the next run.
        // Each run is a campaign of its own, whose parent_id names the series.
        Migration(version: 7, name: "recurring campaigns", sql: """
        ALTER TABLE reach.campaigns ADD COLUMN IF NOT EXISTS recurring boolean NOT NULL DEFAULT false;
        ALTER TABLE reach.campaigns ADD COLUMN IF NOT EXISTS parent_id text;
        CREATE INDEX IF NOT EXISTS campaigns_series_due ON reach.campaigns (scheduled_at) WHERE recurring AND finished_at IS NULL;
        CREATE INDEX IF NOT EXISTS campaigns_parent ON reach.campaigns (parent_id) WHERE parent_id IS NOT NULL;
        """),
        // Campaign shards: a big campaign's segment is cut into ranges of user
        // ids when it starts, each with a lease (owner, epoch, lease_until),
        // a checkpoint and counters of its own, so every instance can work one
        // campaign at once. `campaigns.shards` = 0: not cut (the campaign's own
        // lease and checkpoint, as before); > 0: how many rows it has here.
        // `planned`: the users counted when the campaign was cut.
        Migration(version: 8, name: "campaign shards", sql: """
        ALTER TABLE reach.campaigns ADD COLUMN IF NOT EXISTS shards integer NOT NULL DEFAULT 0;
        ALTER TABLE reach.campaigns ADD COLUMN IF NOT EXISTS planned bigint;
        CREATE TABLE IF NOT EXISTS reach.campaign_shards (
            campaign_id  text NOT NULL REFERENCES reach.campaigns (id) ON DELETE CASCADE,
            shard        integer NOT NULL,
            lower_bound  text NOT NULL,
            upper_bound  text,
            checkpoint   text,
            done         boolean NOT NULL DEFAULT false,
            owner        text,
            epoch        bigint NOT NULL DEFAULT 0,
            lease_until  timestamptz,
            targeted     bigint NOT NULL DEFAULT 0,
            sent         bigint NOT NULL DEFAULT 0,
            skipped      bigint NOT NULL DEFAULT 0,
            failed       bigint NOT NULL DEFAULT 0,
            dead         bigint NOT NULL DEFAULT 0,
            started_at   timestamptz,
            finished_at  timestamptz,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign_id, shard)
        );
        CREATE INDEX IF NOT EXISTS campaign_shards_open ON reach.campaign_shards (campaign_id) WHERE NOT done;
        """),
        // Which of a channel's providers accepted a message (channels.<name>.providers: failover).
        Migration(version: 9, name: "delivery provider", sql: """
        ALTER TABLE reach.deliveries ADD COLUMN IF NOT EXISTS provider text;
        """),
        // A campaign writes one row per user, and each row's primary-key insert
        // descends the B-tree comparing (campaign_id, user_id) a dozen times. In
        // a libc collation each comparison is a strcoll (copying both strings to
        // be NUL-terminated); in "C" it is a memcmp. COPY of 1 000 000 rows into
        // a table already holding another campaign: 2.85–3.30 s → 2.49–2.58 s.
        // Only these two columns change: nothing pages through reach.deliveries
        // by user id (pages are read from reach.segment_members and
        // reach.recipients, which keep the database's collation, so keyset order
        // and shard ranges are unchanged); rows are looked up by equality, which
        // is the same in every deterministic collation, and the one range
        // condition on them (DeliveryStore.existing) is computed in "C" too.
        // The table is not rewritten (same type); its indexes are rebuilt.
        Migration(version: 10, name: "delivery keys in byte order", sql: """
        ALTER TABLE reach.deliveries
            ALTER COLUMN campaign_id TYPE text COLLATE "C",
            ALTER COLUMN user_id TYPE text COLLATE "C";
        """),
    ]

    public static var latestVersion: Int { all.map(\.version).max() ?? 0 }
}
