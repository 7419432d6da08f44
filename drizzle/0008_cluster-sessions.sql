ALTER TABLE "devices" ADD COLUMN "session_node" text;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "session_epoch" bigint;--> statement-breakpoint
ALTER TABLE "notify_jobs" ADD COLUMN "claimed_by" text;--> statement-breakpoint
ALTER TABLE "notify_jobs" ADD COLUMN "claim_until" bigint;