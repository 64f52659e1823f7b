-- Which node took each broadcast in (crash recovery at start finishes only that node's
-- interrupted sessions; NULL: recorded before this column, by whichever node), and the key of
-- the session's one danmaku file (danmaku/{room}/{session}/all.json) once it is written.
ALTER TABLE sessions ADD COLUMN node TEXT;
ALTER TABLE sessions ADD COLUMN danmaku_key TEXT;
