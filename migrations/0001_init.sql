-- barrage schema, portable between SQLite and PostgreSQL (TEXT and BIGINT only; times are
-- milliseconds since the epoch; NULL closed_ms/ended_ms means open/ongoing).

CREATE TABLE rooms (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    key_hash    TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    closed_ms   BIGINT
);

CREATE TABLE mutes (
    room        TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    until_ms    BIGINT,
    PRIMARY KEY (room, user_id)
);

CREATE TABLE bans (
    room        TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (room, user_id)
);

CREATE TABLE blocked_words (
    room        TEXT NOT NULL,
    word        TEXT NOT NULL,
    PRIMARY KEY (room, word)
);

CREATE TABLE room_settings (
    room        TEXT PRIMARY KEY,
    slow_mode_s BIGINT NOT NULL
);

CREATE TABLE sessions (
    room        TEXT NOT NULL,
    session     TEXT NOT NULL,
    started_ms  BIGINT NOT NULL,
    ended_ms    BIGINT,
    vod_key     TEXT,
    first_seq   BIGINT,
    last_seq    BIGINT,
    batches     BIGINT NOT NULL,
    PRIMARY KEY (room, session)
);

CREATE INDEX sessions_by_room_time ON sessions (room, started_ms);
