CREATE TABLE "attribute_values" (
	"device_id" text NOT NULL,
	"identifier" text NOT NULL,
	"project_id" text NOT NULL,
	"value" jsonb NOT NULL,
	"attr_type" text NOT NULL,
	"data_type" text NOT NULL,
	"ts" bigint NOT NULL,
	CONSTRAINT "attribute_values_device_id_identifier_pk" PRIMARY KEY("device_id","identifier")
);
--> statement-breakpoint
CREATE TABLE "commands" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_id" text NOT NULL,
	"seq" bigint NOT NULL,
	"method" text NOT NULL,
	"params" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"state" text NOT NULL,
	"expire_time" bigint,
	"reply_timeout_ms" integer NOT NULL,
	"reply" jsonb,
	"error" text,
	"create_time" bigint NOT NULL,
	"sent_time" bigint,
	"reply_time" bigint,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "device_events" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_id" text NOT NULL,
	"method" text NOT NULL,
	"params" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"ts" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "attribute_values" ADD CONSTRAINT "attribute_values_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attribute_values" ADD CONSTRAINT "attribute_values_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "commands" ADD CONSTRAINT "commands_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "commands" ADD CONSTRAINT "commands_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_events" ADD CONSTRAINT "device_events_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_events" ADD CONSTRAINT "device_events_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "commands_project_device_id_idx" ON "commands" USING btree ("project_id","device_id","id");--> statement-breakpoint
CREATE INDEX "commands_open_idx" ON "commands" USING btree ("device_id","state") WHERE state in ('queued', 'sent');--> statement-breakpoint
CREATE UNIQUE INDEX "commands_open_seq_uq" ON "commands" USING btree ("device_id","seq") WHERE state in ('queued', 'sent');--> statement-breakpoint
CREATE INDEX "device_events_device_id_idx" ON "device_events" USING btree ("device_id","id");