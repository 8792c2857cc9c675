CREATE TABLE alert_deliveries (
	id INTEGER NOT NULL,
	workflow VARCHAR NOT NULL,
	run_id VARCHAR,
	kind VARCHAR NOT NULL,
	dedupe_key VARCHAR NOT NULL,
	url VARCHAR NOT NULL,
	payload JSON NOT NULL,
	status VARCHAR NOT NULL,
	attempts INTEGER NOT NULL,
	next_attempt_at DOUBLE NOT NULL,
	response_code INTEGER,
	last_error TEXT,
	created_at DOUBLE NOT NULL,
	delivered_at DOUBLE,
	PRIMARY KEY (id)
);

CREATE INDEX ix_alert_deliveries_due ON alert_deliveries (status, next_attempt_at);

CREATE INDEX ix_alert_deliveries_run ON alert_deliveries (run_id, id);

CREATE UNIQUE INDEX ux_alert_deliveries_key ON alert_deliveries (dedupe_key, url);

CREATE TABLE artifact_uses (
	id INTEGER NOT NULL,
	hash VARCHAR NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	path VARCHAR NOT NULL,
	attempt INTEGER NOT NULL,
	outputs JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_artifact_uses_hash ON artifact_uses (hash, id);

CREATE INDEX ix_artifact_uses_run ON artifact_uses (run_id, id);

CREATE TABLE artifacts (
	id INTEGER NOT NULL,
	hash VARCHAR NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	path VARCHAR NOT NULL,
	output VARCHAR NOT NULL,
	serializer VARCHAR NOT NULL,
	size BIGINT NOT NULL,
	attempt INTEGER NOT NULL,
	type_name VARCHAR NOT NULL,
	item_index INTEGER,
	inputs JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_artifacts_hash ON artifacts (hash);

CREATE INDEX ix_artifacts_run ON artifacts (run_id, id);

CREATE TABLE attempts (
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	number INTEGER NOT NULL,
	status VARCHAR NOT NULL,
	started_at DOUBLE,
	ended_at DOUBLE,
	worker VARCHAR NOT NULL,
	error JSON,
	PRIMARY KEY (run_id, step_run_id, number)
);

CREATE INDEX ix_attempts_ended ON attempts (ended_at);

CREATE TABLE audit (
	id INTEGER NOT NULL,
	at DOUBLE NOT NULL,
	actor VARCHAR NOT NULL,
	action VARCHAR NOT NULL,
	target VARCHAR NOT NULL,
	data JSON NOT NULL,
	token_id VARCHAR,
	PRIMARY KEY (id)
);

CREATE INDEX ix_audit_target ON audit (target, id);

CREATE INDEX ix_audit_token ON audit (token_id, id);

CREATE TABLE backfills (
	id VARCHAR NOT NULL,
	workflow VARCHAR NOT NULL,
	cron VARCHAR NOT NULL,
	timezone VARCHAR NOT NULL,
	start_at DOUBLE NOT NULL,
	end_at DOUBLE NOT NULL,
	concurrency INTEGER NOT NULL,
	params JSON NOT NULL,
	slot_params JSON NOT NULL,
	status VARCHAR NOT NULL,
	total INTEGER NOT NULL,
	next_index INTEGER NOT NULL,
	created_at DOUBLE NOT NULL,
	updated_at DOUBLE NOT NULL,
	"by" VARCHAR NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_backfills_status ON backfills (status, created_at);

CREATE TABLE bundles (
	folder VARCHAR NOT NULL,
	files JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (folder)
);

CREATE TABLE cache_entries (
	"key" VARCHAR NOT NULL,
	workflow VARCHAR NOT NULL,
	step_id VARCHAR NOT NULL,
	path VARCHAR NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	outputs JSON NOT NULL,
	components JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY ("key")
);

CREATE INDEX ix_cache_entries_run ON cache_entries (run_id, "key");

CREATE INDEX ix_cache_entries_step ON cache_entries (workflow, step_id, created_at);

CREATE TABLE commands (
	id INTEGER NOT NULL,
	run_id VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	payload JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	"by" VARCHAR NOT NULL,
	done_at DOUBLE,
	PRIMARY KEY (id)
);

CREATE INDEX ix_commands_pending ON commands (run_id) WHERE done_at IS NULL;

CREATE INDEX ix_commands_run_done ON commands (run_id, done_at);

CREATE TABLE definitions (
	hash VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	spec JSON NOT NULL,
	source TEXT NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (hash)
);

CREATE INDEX ix_definitions_name ON definitions (name);

CREATE TABLE events (
	id INTEGER NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER,
	kind VARCHAR NOT NULL,
	at DOUBLE NOT NULL,
	data JSON NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_events_run ON events (run_id, id);

CREATE INDEX ix_events_run_step ON events (run_id, step_run_id, id);

CREATE TABLE holds (
	run_id VARCHAR NOT NULL,
	step_path VARCHAR NOT NULL,
	attempt INTEGER NOT NULL,
	kind VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	grp VARCHAR NOT NULL,
	cpus DOUBLE NOT NULL,
	memory BIGINT NOT NULL,
	gpus DOUBLE NOT NULL,
	owner VARCHAR NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (run_id, step_path, attempt, kind, name)
);

CREATE INDEX ix_holds_limit ON holds (kind, name);

CREATE TABLE idempotency_keys (
	actor VARCHAR NOT NULL,
	"key" VARCHAR NOT NULL,
	request_hash VARCHAR NOT NULL,
	status INTEGER NOT NULL,
	response JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	PRIMARY KEY (actor, "key")
);

CREATE INDEX ix_idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE logs (
	id INTEGER NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	attempt INTEGER NOT NULL,
	at DOUBLE NOT NULL,
	stream VARCHAR NOT NULL,
	text TEXT NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_logs_run ON logs (run_id, id);

CREATE INDEX ix_logs_run_step ON logs (run_id, step_run_id, id);

CREATE TABLE metrics (
	id INTEGER NOT NULL,
	run_id VARCHAR NOT NULL,
	step_run_id INTEGER NOT NULL,
	attempt INTEGER NOT NULL,
	name VARCHAR NOT NULL,
	value DOUBLE NOT NULL,
	at DOUBLE NOT NULL,
	step INTEGER,
	PRIMARY KEY (id)
);

CREATE INDEX ix_metrics_run ON metrics (run_id, id);

CREATE INDEX ix_metrics_run_step ON metrics (run_id, step_run_id, id);

CREATE TABLE permits (
	tag VARCHAR NOT NULL,
	max INTEGER NOT NULL,
	updated_at DOUBLE NOT NULL,
	PRIMARY KEY (tag)
);

CREATE TABLE pools (
	name VARCHAR NOT NULL,
	slots INTEGER NOT NULL,
	cpus DOUBLE,
	memory BIGINT,
	gpus DOUBLE,
	updated_at DOUBLE NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE runs (
	id VARCHAR NOT NULL,
	workflow VARCHAR NOT NULL,
	definition_hash VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	params JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	started_at DOUBLE,
	ended_at DOUBLE,
	error TEXT,
	restarts INTEGER NOT NULL,
	executor VARCHAR NOT NULL,
	owner VARCHAR,
	lease_until DOUBLE,
	labels JSON NOT NULL,
	lease_epoch INTEGER DEFAULT '0' NOT NULL,
	priority INTEGER DEFAULT '0' NOT NULL,
	origin VARCHAR DEFAULT '' NOT NULL,
	PRIMARY KEY (id)
);

CREATE INDEX ix_runs_claim ON runs (priority DESC, created_at, id) WHERE status NOT IN ('cancelled', 'failed', 'succeeded');

CREATE INDEX ix_runs_claimed ON runs (workflow, status, id) WHERE status = 'pending' AND owner IS NOT NULL;

CREATE INDEX ix_runs_created ON runs (created_at);

CREATE INDEX ix_runs_status_created ON runs (status, created_at);

CREATE INDEX ix_runs_waiting ON runs (workflow, priority, created_at, id) WHERE status = 'pending' AND owner IS NULL;

CREATE INDEX ix_runs_workflow_created ON runs (workflow, created_at);

CREATE INDEX ix_runs_workflow_status_ended ON runs (workflow, status, ended_at, id);

CREATE TABLE signals (
	id INTEGER NOT NULL,
	name VARCHAR NOT NULL,
	params JSON NOT NULL,
	at DOUBLE NOT NULL,
	"by" VARCHAR NOT NULL,
	source_run_id VARCHAR,
	dedupe_key VARCHAR,
	scope JSON,
	PRIMARY KEY (id)
);

CREATE INDEX ix_signals_at ON signals (at);

CREATE INDEX ix_signals_name ON signals (name, id);

CREATE TABLE step_runs (
	run_id VARCHAR NOT NULL,
	id INTEGER NOT NULL,
	path VARCHAR NOT NULL,
	step_id VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	parent_id INTEGER,
	"index" INTEGER,
	item JSON,
	attempts INTEGER NOT NULL,
	platform_attempts INTEGER NOT NULL,
	outputs JSON,
	error JSON,
	reason TEXT NOT NULL,
	created_at DOUBLE NOT NULL,
	started_at DOUBLE,
	ended_at DOUBLE,
	next_attempt_at DOUBLE,
	cache_key VARCHAR,
	cached_from VARCHAR,
	first_status VARCHAR,
	first_started_at DOUBLE,
	first_ended_at DOUBLE,
	first_worker VARCHAR,
	first_error JSON,
	PRIMARY KEY (run_id, id)
);

CREATE INDEX ix_step_runs_cached_from ON step_runs (cached_from, run_id, id) WHERE cached_from IS NOT NULL;

CREATE INDEX ix_step_runs_kind_status ON step_runs (run_id, kind, status, id);

CREATE INDEX ix_step_runs_metrics ON step_runs (status, first_ended_at) WHERE kind = 'task';

CREATE INDEX ix_step_runs_parent_index ON step_runs (run_id, parent_id, "index");

CREATE INDEX ix_step_runs_parent_status ON step_runs (run_id, parent_id, status, "index") WHERE parent_id IS NOT NULL;

CREATE UNIQUE INDEX ux_step_runs_path ON step_runs (run_id, path);

CREATE TABLE tokens (
	id VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	hashed VARCHAR NOT NULL,
	role VARCHAR NOT NULL,
	groups JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	last_used_at DOUBLE,
	revoked_at DOUBLE,
	expires_at DOUBLE,
	PRIMARY KEY (id)
);

CREATE INDEX ix_tokens_created ON tokens (created_at, id);

CREATE UNIQUE INDEX ux_tokens_hashed ON tokens (hashed);

CREATE TABLE trigger_firings (
	id INTEGER NOT NULL,
	trigger_id VARCHAR NOT NULL,
	dedupe_key VARCHAR NOT NULL,
	workflow VARCHAR NOT NULL,
	run_id VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	params JSON NOT NULL,
	labels JSON NOT NULL,
	due_at DOUBLE NOT NULL,
	created_at DOUBLE NOT NULL,
	error TEXT,
	PRIMARY KEY (id)
);

CREATE INDEX ix_trigger_firings_expiry ON trigger_firings (created_at) WHERE status <> 'claimed' AND trigger_id NOT LIKE '%:data:%' AND (status <> 'created' OR trigger_id NOT LIKE 'backfill:%');

CREATE INDEX ix_trigger_firings_status ON trigger_firings (status, trigger_id);

CREATE INDEX ix_trigger_firings_workflow ON trigger_firings (workflow, id);

CREATE UNIQUE INDEX ux_trigger_firings_key ON trigger_firings (trigger_id, dedupe_key);

CREATE TABLE trigger_state (
	"key" VARCHAR NOT NULL,
	value JSON NOT NULL,
	updated_at DOUBLE NOT NULL,
	PRIMARY KEY ("key")
);

CREATE TABLE workflow_versions (
	workflow VARCHAR NOT NULL,
	version INTEGER NOT NULL,
	definition_hash VARCHAR NOT NULL,
	source TEXT NOT NULL,
	source_name VARCHAR NOT NULL,
	created_at DOUBLE NOT NULL,
	created_by VARCHAR NOT NULL,
	PRIMARY KEY (workflow, version)
);

CREATE INDEX ix_workflow_versions_hash ON workflow_versions (workflow, definition_hash);

CREATE TABLE workflows (
	name VARCHAR NOT NULL,
	active_version INTEGER,
	owner_group VARCHAR,
	properties JSON NOT NULL,
	created_at DOUBLE NOT NULL,
	updated_at DOUBLE NOT NULL,
	PRIMARY KEY (name)
);

CREATE TABLE kaon_schema_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT kaon_schema_version_pkc PRIMARY KEY (version_num)
);
