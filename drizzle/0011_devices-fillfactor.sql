-- Every connect, disconnect and report of a device rewrites its row (the presence flush: online state and
-- activity times). Room on each page lets PostgreSQL update it in place (HOT) when no indexed column changed,
-- instead of a new entry in each of the table's indexes (docs/scaling.md §4). No rewrite: new pages are filled
-- to 70%, and rows written again move to pages with room; `VACUUM FULL devices` applies it at once.
ALTER TABLE "devices" SET (fillfactor = 70);
