CREATE TABLE "ingest_commits" (
	"id" text PRIMARY KEY NOT NULL,
	"create_time" bigint NOT NULL
);
