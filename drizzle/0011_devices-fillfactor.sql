-- Every connect, disconnect and report of a device rewrites its row (the presence flush: online state and
-- activity times). Room on each page lets PostgreSQL update it in place (HOT) when no indexed column changed,
-- instead of a new entry in each of the table's indexes (docs/scaling.md §4). No rewrite: pages get the room
-- as rows are next written.
ALTER TABLE "devices" SET (fillfactor = 70);
