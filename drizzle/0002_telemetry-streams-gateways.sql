CREATE TABLE "data_messages" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_id" text NOT NULL,
	"identifier" text NOT NULL,
	"direction" text NOT NULL,
	"transport" text NOT NULL,
	"payload" "bytea" NOT NULL,
	"ts" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "device_types" ADD COLUMN "tcp_heartbeat" text;--> statement-breakpoint
ALTER TABLE "device_types" ADD COLUMN "tcp_frame_gap_ms" integer;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "gateway_id" text;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "sub_address" text;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "device_rate_limit" integer;--> statement-breakpoint
ALTER TABLE "projects" ADD COLUMN "history_retention_days" integer;--> statement-breakpoint
ALTER TABLE "data_messages" ADD CONSTRAINT "data_messages_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_messages" ADD CONSTRAINT "data_messages_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "data_messages_device_stream_idx" ON "data_messages" USING btree ("device_id","identifier","id");--> statement-breakpoint
CREATE INDEX "data_messages_project_ts_idx" ON "data_messages" USING btree ("project_id","ts");--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_gateway_id_devices_id_fk" FOREIGN KEY ("gateway_id") REFERENCES "public"."devices"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "devices_gateway_address_uq" ON "devices" USING btree ("gateway_id","sub_address") WHERE gateway_id is not null;--> statement-breakpoint
-- Attribute history (issue #4), kept out of schema.ts: its shape depends on the server. With TimescaleDB
-- (enabled before migrations run) it is a hypertable; otherwise it is range-partitioned by day and the app
-- creates and drops the partitions (src/db/repositories/history.repository.ts). One value per row, typed so
-- numbers aggregate: num | bool | str | json (objects and arrays).
DO $$
DECLARE
  cols text := '(project_id text NOT NULL, device_id text NOT NULL, identifier text NOT NULL, ts timestamptz NOT NULL, '
    || 'num double precision, bool boolean, str text, json jsonb)';
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    EXECUTE 'CREATE TABLE attribute_history ' || cols;
    EXECUTE $q$SELECT create_hypertable('attribute_history', 'ts', chunk_time_interval => interval '1 day', create_default_indexes => false)$q$;
  ELSE
    EXECUTE 'CREATE TABLE attribute_history ' || cols || ' PARTITION BY RANGE (ts)';
  END IF;
  EXECUTE 'CREATE INDEX attribute_history_series_idx ON attribute_history (device_id, identifier, ts DESC)';
END $$;
