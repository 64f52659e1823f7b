-- Room hosts and the audit log (issue #16). Portable between SQLite and PostgreSQL like 0001:
-- TEXT and BIGINT only, booleans as 0/1, times in ms since the epoch.

-- The digest of each room's host key ('' until one is made: no host key opens the room), and
-- whether gifts may be posted with it (0: only the admin key posts gifts).
ALTER TABLE rooms ADD COLUMN host_key_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN host_gifts BIGINT NOT NULL DEFAULT 0;

-- Every moderation action, by whom. `id` is time-ordered text (no autoincrement type is the
-- same in both databases): the time in ms and the writing node's counter, zero-padded, then
-- a random suffix.
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    room        TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    via         TEXT NOT NULL
);

CREATE INDEX audit_log_by_room ON audit_log (room, id);
