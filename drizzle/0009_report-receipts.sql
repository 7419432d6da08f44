CREATE TABLE "report_receipts" (
	"batch_id" text PRIMARY KEY NOT NULL,
	"create_time" bigint NOT NULL,
	"keys" bigint[] NOT NULL
);
