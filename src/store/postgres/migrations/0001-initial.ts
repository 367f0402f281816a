/**
 * The first schema, after the spec's data models: tasks, api_keys (scopes as text[]), workers,
 * schedules and audit_log. Indexes follow the queries the Store and the API make.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const initial: Migration = {
  version: 1,
  name: 'initial',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`create table ${t('tasks')} (
        queue text not null,
        id text not null,
        tenant_id text not null,
        name text not null,
        payload jsonb not null,
        priority text not null check (priority in ('critical', 'high', 'normal', 'low')),
        status text not null
          check (status in ('pending', 'queued', 'processing', 'completed', 'failed', 'cancelled')),
        schedule text,
        scheduled_at timestamptz not null,
        timeout_ms integer not null,
        max_retries integer not null,
        retry_count integer not null default 0,
        attempt integer not null default 0,
        idempotency_key text,
        idempotency_expires_at timestamptz,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        enqueued_at timestamptz,
        started_at timestamptz,
        completed_at timestamptz,
        dead_lettered_at timestamptz,
        revived_at timestamptz,
        result jsonb,
        error jsonb,
        history jsonb not null default '[]',
        worker_id text,
        primary key (queue, id)
      )`,
      // At most one task per (queue, tenant, key); an expired key is released (set to null) on reuse.
      sql`create unique index tasks_idempotency_key on ${t('tasks')} (queue, tenant_id, idempotency_key)
        where idempotency_key is not null`,
      // list({ tenantId, status }) and list({ tenantId }), newest first, keyset by (created_at, id).
      sql`create index tasks_tenant_status_created on ${t('tasks')} (queue, tenant_id, status, created_at, id)`,
      sql`create index tasks_tenant_created on ${t('tasks')} (queue, tenant_id, created_at, id)`,
      sql`create index tasks_created on ${t('tasks')} (queue, created_at, id)`,
      // Recovery: unfinished tasks by id, and rows the broker never confirmed. Both stay small.
      sql`create index tasks_unfinished on ${t('tasks')} (queue, id)
        where status in ('pending', 'queued', 'processing')`,
      sql`create index tasks_unenqueued on ${t('tasks')} (queue, created_at) where enqueued_at is null`,
      // Retention: finished rows by finish time.
      sql`create index tasks_finished on ${t('tasks')} (queue, completed_at) where completed_at is not null`,

      sql`create table ${t('api_keys')} (
        id text primary key,
        key_hash text not null unique,
        tenant_id text not null,
        name text,
        scopes text[] not null default '{}',
        rate_limit integer,
        monthly_quota integer,
        is_active boolean not null default true,
        created_at timestamptz not null default now(),
        expires_at timestamptz,
        last_used_at timestamptz
      )`,
      sql`create index api_keys_tenant on ${t('api_keys')} (tenant_id)`,

      sql`create table ${t('workers')} (
        id text primary key,
        queue text not null,
        status text not null check (status in ('active', 'idle', 'unhealthy', 'stopped')),
        hostname text,
        pid integer,
        concurrency integer,
        current_task_id text,
        tasks_processed bigint not null default 0,
        last_heartbeat timestamptz not null,
        created_at timestamptz not null default now()
      )`,
      sql`create index workers_heartbeat on ${t('workers')} (queue, last_heartbeat)`,

      sql`create table ${t('schedules')} (
        id text primary key,
        queue text not null,
        tenant_id text not null,
        task_name text not null,
        cron text not null,
        timezone text not null default 'UTC',
        payload jsonb not null default 'null',
        priority text not null default 'normal' check (priority in ('critical', 'high', 'normal', 'low')),
        misfire_policy text not null default 'run-once',
        enabled boolean not null default true,
        next_run_at timestamptz,
        last_run_at timestamptz,
        created_at timestamptz not null default now(),
        updated_at timestamptz not null default now()
      )`,
      sql`create index schedules_due on ${t('schedules')} (queue, next_run_at) where enabled`,
      sql`create index schedules_tenant on ${t('schedules')} (queue, tenant_id)`,

      sql`create table ${t('audit_log')} (
        id bigint generated always as identity primary key,
        at timestamptz not null default now(),
        tenant_id text,
        actor text,
        action text not null,
        target_id text,
        details jsonb
      )`,
      sql`create index audit_log_tenant_at on ${t('audit_log')} (tenant_id, at)`,
      sql`create index audit_log_at on ${t('audit_log')} (at)`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
