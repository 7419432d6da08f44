CREATE TABLE "telemetry_checkpoints" (
	"name" text PRIMARY KEY NOT NULL,
	"ts" bigint NOT NULL
);
--> statement-breakpoint
-- Current values are rewritten constantly: room on each page lets PostgreSQL update them in place (HOT).
ALTER TABLE "attribute_values" SET (fillfactor = 70);
