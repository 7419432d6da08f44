CREATE TABLE "admins" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"account" text NOT NULL,
	"name" text DEFAULT '' NOT NULL,
	"email" text DEFAULT '' NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"password_hash" text NOT NULL,
	"credentials_time" bigint DEFAULT 0 NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "api_apps" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"name" text NOT NULL,
	"access_key" text NOT NULL,
	"secret_hash" text NOT NULL,
	"credentials_time" bigint DEFAULT 0 NOT NULL,
	"create_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "attribute_models" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_type_id" text NOT NULL,
	"identifier" text NOT NULL,
	"name" text NOT NULL,
	"data_type" text NOT NULL,
	"unit" text DEFAULT '' NOT NULL,
	"options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "customer_devices" (
	"customer_id" text NOT NULL,
	"device_id" text NOT NULL,
	"project_id" text NOT NULL,
	"create_time" bigint NOT NULL,
	CONSTRAINT "customer_devices_customer_id_device_id_pk" PRIMARY KEY("customer_id","device_id")
);
--> statement-breakpoint
CREATE TABLE "customers" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"account" text NOT NULL,
	"password_hash" text NOT NULL,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"email" text DEFAULT '' NOT NULL,
	"mobile" text DEFAULT '' NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"locale" text DEFAULT 'en' NOT NULL,
	"credentials_time" bigint DEFAULT 0 NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "data_streams" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_type_id" text NOT NULL,
	"identifier" text NOT NULL,
	"name" text NOT NULL,
	"format" text NOT NULL,
	"tcp_bound" boolean DEFAULT false NOT NULL,
	"map_to_attributes" boolean DEFAULT false NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "device_group_members" (
	"group_id" text NOT NULL,
	"device_id" text NOT NULL,
	"project_id" text NOT NULL,
	CONSTRAINT "device_group_members_group_id_device_id_pk" PRIMARY KEY("group_id","device_id")
);
--> statement-breakpoint
CREATE TABLE "device_groups" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"parent_id" text,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "device_infos" (
	"device_id" text NOT NULL,
	"info_id" text NOT NULL,
	"project_id" text NOT NULL,
	"value" jsonb NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL,
	CONSTRAINT "device_infos_device_id_info_id_pk" PRIMARY KEY("device_id","info_id")
);
--> statement-breakpoint
CREATE TABLE "device_types" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"type_key" text NOT NULL,
	"conn_type" text DEFAULT '1' NOT NULL,
	"conn_protocol" text DEFAULT 'mqtt' NOT NULL,
	"allow_auto_create" boolean DEFAULT false NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL,
	CONSTRAINT "device_types_type_key_unique" UNIQUE("type_key")
);
--> statement-breakpoint
CREATE TABLE "devices" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"type_id" text,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"device_key" text,
	"access_token" text NOT NULL,
	"view_token" text NOT NULL,
	"device_code" text NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"disabled" boolean DEFAULT false NOT NULL,
	"online" boolean DEFAULT false NOT NULL,
	"active" boolean DEFAULT false NOT NULL,
	"active_ts" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"alarm_level" smallint DEFAULT 0 NOT NULL,
	"alarm" jsonb,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL,
	CONSTRAINT "devices_access_token_unique" UNIQUE("access_token"),
	CONSTRAINT "devices_view_token_unique" UNIQUE("view_token")
);
--> statement-breakpoint
CREATE TABLE "extend_info_defs" (
	"id" text PRIMARY KEY NOT NULL,
	"project_id" text NOT NULL,
	"device_type_id" text NOT NULL,
	"info_type" text NOT NULL,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"options" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL
);
--> statement-breakpoint
CREATE TABLE "projects" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"descr" text DEFAULT '' NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"project_key" text NOT NULL,
	"view_key" text,
	"view_secret_hash" text,
	"device_quota" integer,
	"create_time" bigint NOT NULL,
	"update_time" bigint NOT NULL,
	CONSTRAINT "projects_project_key_unique" UNIQUE("project_key"),
	CONSTRAINT "projects_view_key_unique" UNIQUE("view_key")
);
--> statement-breakpoint
ALTER TABLE "admins" ADD CONSTRAINT "admins_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "api_apps" ADD CONSTRAINT "api_apps_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attribute_models" ADD CONSTRAINT "attribute_models_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attribute_models" ADD CONSTRAINT "attribute_models_device_type_id_device_types_id_fk" FOREIGN KEY ("device_type_id") REFERENCES "public"."device_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customer_devices" ADD CONSTRAINT "customer_devices_customer_id_customers_id_fk" FOREIGN KEY ("customer_id") REFERENCES "public"."customers"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customer_devices" ADD CONSTRAINT "customer_devices_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customer_devices" ADD CONSTRAINT "customer_devices_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "customers" ADD CONSTRAINT "customers_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_streams" ADD CONSTRAINT "data_streams_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "data_streams" ADD CONSTRAINT "data_streams_device_type_id_device_types_id_fk" FOREIGN KEY ("device_type_id") REFERENCES "public"."device_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_group_members" ADD CONSTRAINT "device_group_members_group_id_device_groups_id_fk" FOREIGN KEY ("group_id") REFERENCES "public"."device_groups"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_group_members" ADD CONSTRAINT "device_group_members_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_group_members" ADD CONSTRAINT "device_group_members_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_groups" ADD CONSTRAINT "device_groups_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_groups" ADD CONSTRAINT "device_groups_parent_id_device_groups_id_fk" FOREIGN KEY ("parent_id") REFERENCES "public"."device_groups"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_infos" ADD CONSTRAINT "device_infos_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_infos" ADD CONSTRAINT "device_infos_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "device_types" ADD CONSTRAINT "device_types_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_type_id_device_types_id_fk" FOREIGN KEY ("type_id") REFERENCES "public"."device_types"("id") ON DELETE restrict ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "extend_info_defs" ADD CONSTRAINT "extend_info_defs_project_id_projects_id_fk" FOREIGN KEY ("project_id") REFERENCES "public"."projects"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "extend_info_defs" ADD CONSTRAINT "extend_info_defs_device_type_id_device_types_id_fk" FOREIGN KEY ("device_type_id") REFERENCES "public"."device_types"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "admins_project_account_uq" ON "admins" USING btree ("project_id","account");--> statement-breakpoint
CREATE INDEX "api_apps_project_idx" ON "api_apps" USING btree ("project_id");--> statement-breakpoint
CREATE UNIQUE INDEX "attribute_models_type_ident_uq" ON "attribute_models" USING btree ("device_type_id","identifier");--> statement-breakpoint
CREATE INDEX "customer_devices_device_idx" ON "customer_devices" USING btree ("device_id");--> statement-breakpoint
CREATE UNIQUE INDEX "customers_project_account_uq" ON "customers" USING btree ("project_id","account");--> statement-breakpoint
CREATE INDEX "customers_project_id_idx" ON "customers" USING btree ("project_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "data_streams_type_ident_uq" ON "data_streams" USING btree ("device_type_id","identifier");--> statement-breakpoint
CREATE INDEX "device_group_members_device_idx" ON "device_group_members" USING btree ("device_id");--> statement-breakpoint
CREATE INDEX "device_groups_project_parent_idx" ON "device_groups" USING btree ("project_id","parent_id");--> statement-breakpoint
CREATE INDEX "device_groups_parent_idx" ON "device_groups" USING btree ("parent_id");--> statement-breakpoint
CREATE INDEX "device_infos_project_info_idx" ON "device_infos" USING btree ("project_id","info_id");--> statement-breakpoint
CREATE INDEX "device_types_project_idx" ON "device_types" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "devices_project_id_idx" ON "devices" USING btree ("project_id","id");--> statement-breakpoint
CREATE INDEX "devices_project_type_id_idx" ON "devices" USING btree ("project_id","type_id","id");--> statement-breakpoint
CREATE INDEX "devices_type_idx" ON "devices" USING btree ("type_id");--> statement-breakpoint
CREATE UNIQUE INDEX "devices_project_device_key_uq" ON "devices" USING btree ("project_id","device_key") WHERE device_key is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "devices_project_code_uq" ON "devices" USING btree ("project_id","device_code");--> statement-breakpoint
CREATE INDEX "devices_project_state_idx" ON "devices" USING btree ("project_id","online","active","alarm_level");--> statement-breakpoint
CREATE INDEX "extend_info_defs_type_idx" ON "extend_info_defs" USING btree ("device_type_id");