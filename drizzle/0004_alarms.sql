CREATE TABLE "alarm_logs" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_id" text NOT NULL,
	"rule_id" text NOT NULL,
	"alarm_status" smallint NOT NULL,
	"alarm_level" smallint NOT NULL,
	"alarm_info" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"notify_logs" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"end_time" bigint,
	"trigger_id" text,
	"ack_by" text,
	"ack_note" text,
	"ack_time" bigint,
	"clear_by" text,
	"clear_note" text,
	"clear_time" bigint,
	"create_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "alarm_rules" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_type_id" text NOT NULL,
	"name" text NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"level" smallint NOT NULL,
	"condition" jsonb NOT NULL,
	"device_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"group_ids" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"message" text DEFAULT '' NOT NULL,
	"suppress_seconds" integer DEFAULT 0 NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "notification_targets" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"name" text NOT NULL,
	"kind" text DEFAULT 'webhook' NOT NULL,
	"url" text NOT NULL,
	"secret" text NOT NULL,
	"min_level" smallint DEFAULT 1 NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "alarm_logs" ADD CONSTRAINT "alarm_logs_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alarm_logs" ADD CONSTRAINT "alarm_logs_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alarm_rules" ADD CONSTRAINT "alarm_rules_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "alarm_rules" ADD CONSTRAINT "alarm_rules_device_type_id_device_types_id_fk" FOREIGN KEY ("device_type_id") REFERENCES "public"."device_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notification_targets" ADD CONSTRAINT "notification_targets_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "alarm_logs_project_id_idx" ON "alarm_logs" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "alarm_logs_device_id_idx" ON "alarm_logs" USING btree ("device_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "alarm_logs_active_uq" ON "alarm_logs" USING btree ("device_id","rule_id") WHERE alarm_status = 1 and end_time is null;--> statement-breakpoint
CREATE INDEX "alarm_rules_project_idx" ON "alarm_rules" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "notification_targets_project_idx" ON "notification_targets" USING btree ("project_id","id");