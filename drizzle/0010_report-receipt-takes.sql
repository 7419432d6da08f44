CREATE TABLE "report_receipt_takes" (
	"key" bigint PRIMARY KEY NOT NULL,
	"create_time" bigint NOT NULL
);
