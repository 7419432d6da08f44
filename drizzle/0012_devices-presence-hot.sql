-- The presence flush rewrites `online` and `active` at every connect, disconnect and first report, one statement
-- for up to 250 devices. Two things kept those updates from being made in place (HOT, a new row version on the
-- same page and no new index entry), so that each was a new entry in all ten indexes of `devices`:
-- * the index below holds both columns. devices_stat, the one reader it served, counts a project's rows through
--   devices_project_id_idx instead, and is cached (docs/scaling.md §4);
-- * a page needs room for a new version of every row a statement updates, and devices that connect together
--   were created together, so one flush updates most rows of a page. Fillfactor 70 left room for less than half
--   of them; 50 leaves room for about all. New pages are filled to 50%; `VACUUM FULL devices` applies it at once.
DROP INDEX "devices_project_state_idx";--> statement-breakpoint
ALTER TABLE "devices" SET (fillfactor = 50);
