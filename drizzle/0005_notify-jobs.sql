CREATE TABLE "notify_jobs" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"target_id" text NOT NULL,
	"log_id" text NOT NULL,
	"body" text NOT NULL,
	"attempt" integer NOT NULL,
	"due_time" bigint NOT NULL,
	"create_time" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "notify_jobs" ADD CONSTRAINT "notify_jobs_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notify_jobs" ADD CONSTRAINT "notify_jobs_target_id_notification_targets_id_fk" FOREIGN KEY ("target_id") REFERENCES "public"."notification_targets"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "notify_jobs" ADD CONSTRAINT "notify_jobs_log_id_alarm_logs_id_fk" FOREIGN KEY ("log_id") REFERENCES "public"."alarm_logs"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "notify_jobs_project_idx" ON "notify_jobs" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "notify_jobs_target_idx" ON "notify_jobs" USING btree ("target_id");