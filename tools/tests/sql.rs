//! The SQL tools against the real PostgreSQL of the test command: hostile SQL (writes,
//! server programs, server files, stacked statements, runaway queries) fails promptly and
//! leaves the table unchanged; reads work; the byte cap and the schema tool.
//!
//! Needs `DATABASE_URL` (a superuser, as `scripts/pg.sh` gives) for the set-up: locally run
//! `eval "$(bash scripts/pg.sh start)"`.
//! The tools connect as a **non-superuser role** created here with `SELECT` on the table
//! only — the deployment the tools' docs require: a read-only transaction alone does not
//! stop a superuser's `pg_read_file` or `COPY … TO PROGRAM`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use catena_core::{SqlDatabase, Tool, ToolError, TypedTool};
use catena_tools::{SqlQueryTool, SqlSchemaTool};
use catena_vectorstores::PostgresSqlDatabase;
use serde_json::json;

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: these tests need PostgreSQL; start it with \
             `eval \"$(bash scripts/pg.sh start)\"` (and `bash scripts/pg.sh stop` afterwards)"
        )
    })
}

/// Runs `sql` (one or more statements) as the `DATABASE_URL` role with the simple query
/// protocol; returns the first column of every returned row, one per line. Runs on its own
/// thread and runtime so it can be called from sync set-up code.
fn psql(sql: &str) -> String {
    let url = database_url();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to DATABASE_URL: {e}"));
            let driver = tokio::spawn(connection);
            let messages = client
                .simple_query(&sql)
                .await
                .unwrap_or_else(|e| panic!("set-up SQL failed on {sql:?}: {e}"));
            drop(client);
            let _ = driver.await;
            messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    })
    .join()
    .unwrap()
}

/// `DATABASE_URL` with its user and password replaced.
fn url_as(role: &str, password: &str) -> String {
    let url = database_url();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .expect("DATABASE_URL must be a postgres:// URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("postgres://{role}:{password}@{host}")
}

/// A table with a unique name and 50 rows, and a login role with `SELECT` on it only.
struct Fixture {
    table: String,
    role: String,
    password: String,
    canary: String,
}

impl Fixture {
    fn new() -> Fixture {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let suffix = format!("{}_{nanos}", std::process::id());
        let fixture = Fixture {
            table: format!("tools_sql_items_{suffix}"),
            role: format!("tools_sql_reader_{suffix}"),
            password: format!("pw{nanos}"),
            canary: format!("/tmp/catena-tools-sql-canary-{suffix}"),
        };
        let Fixture {
            table,
            role,
            password,
            ..
        } = &fixture;
        psql(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
             INSERT INTO {table} SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 50) AS i;
             CREATE ROLE {role} LOGIN PASSWORD '{password}' NOSUPERUSER NOCREATEDB NOCREATEROLE;
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON {table} TO {role};"
        ));
        fixture
    }

    /// The database as the tools see it: the reader role, 300 ms timeout, 100 rows.
    fn db(&self) -> Arc<dyn SqlDatabase> {
        Arc::new(
            PostgresSqlDatabase::builder()
                .url(url_as(&self.role, &self.password))
                .max_rows(100)
                .statement_timeout(Duration::from_millis(300))
                .build()
                .unwrap(),
        )
    }

    /// Row count and an md5 over every row, read as the superuser.
    fn checksum(&self) -> String {
        psql(&format!(
            "SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY id)) FROM {} t",
            self.table
        ))
    }

    fn cleanup(&self) {
        let _ = std::fs::remove_file(&self.canary);
        psql(&format!(
            "DROP TABLE IF EXISTS {}; DROP OWNED BY {role}; DROP ROLE IF EXISTS {role};",
            self.table,
            role = self.role
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_tools_against_postgres() {
    let fx = Fixture::new();
    let result = std::panic::AssertUnwindSafe(run(&fx));
    let outcome = futures::FutureExt::catch_unwind(result).await;
    fx.cleanup();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn run(fx: &Fixture) {
    let t = &fx.table;
    let db = fx.db();
    let before = fx.checksum();
    assert!(before.starts_with("50:"), "{before}");
    let query = SqlQueryTool::new(db.clone()).into_tool();

    // The role really is not a superuser.
    let out = query
        .call(json!({"query": "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"}))
        .await
        .unwrap();
    assert_eq!(out.content["rows"], json!([[false]]));

    let hostile = [
        format!("DROP TABLE {t}"),
        format!("INSERT INTO {t} VALUES (1000, 'evil', 0)"),
        format!("UPDATE {t} SET price = 0"),
        format!("DELETE FROM {t}"),
        "COPY (SELECT 1) TO PROGRAM 'id'".to_owned(),
        format!("COPY (SELECT 1) TO PROGRAM 'touch {}'", fx.canary),
        "SELECT pg_read_file('/etc/passwd')".to_owned(),
        format!("SELECT 1; DROP TABLE {t}"),
        format!("SELECT 1; DELETE FROM {t};"),
        format!("SET TRANSACTION READ WRITE; DELETE FROM {t}"),
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r) SELECT count(*) FROM r"
            .to_owned(),
        "SELECT pg_sleep(5)".to_owned(),
        format!("SELECT count(*) FROM {t} a, {t} b, {t} c, {t} d, {t} e, {t} f"),
    ];
    for sql in &hostile {
        let started = Instant::now();
        let result = query.call(json!({ "query": sql })).await;
        let elapsed = started.elapsed();
        match result {
            Err(ToolError::Execution(message)) => {
                assert!(!message.is_empty(), "{sql}: empty message");
                eprintln!("refused in {elapsed:?}: {sql}\n  -> {message}");
            }
            other => panic!("{sql}: expected an execution error, got {other:?}"),
        }
        assert!(
            elapsed < Duration::from_secs(3),
            "{sql}: took {elapsed:?} (timeout is 300 ms)"
        );
    }
    assert!(
        !std::path::Path::new(&fx.canary).exists(),
        "COPY TO PROGRAM ran a program on the server"
    );
    assert_eq!(fx.checksum(), before, "the table changed");

    // The database message reaches the model.
    let err = query
        .call(json!({"query": format!("DROP TABLE {t}")}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Execution(ref m) if m.contains("read-only")),
        "{err:?}"
    );
    let err = query
        .call(json!({"query": "SELECT pg_sleep(5)"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Execution(ref m) if m.to_lowercase().contains("time")),
        "{err:?}"
    );

    // Bad input is the model's to correct.
    for args in [
        json!({"query": ""}),
        json!({"query": "   "}),
        json!({"query": format!("SELECT 1 -- {}", "x".repeat(20_000))}),
        json!({}),
        json!({"query": 5}),
    ] {
        let err = query.call(args.clone()).await.unwrap_err();
        assert!(
            matches!(err, ToolError::InvalidArguments(_)),
            "{args}: {err:?}"
        );
    }

    // Reads work.
    let out = query
        .call(
            json!({"query": format!("SELECT id, name, price FROM {t} WHERE id <= 3 ORDER BY id")}),
        )
        .await
        .unwrap();
    assert_eq!(out.content["columns"], json!(["id", "name", "price"]));
    assert_eq!(out.content["rows"].as_array().unwrap().len(), 3);
    assert_eq!(out.content["rows"][0][1], "item 1");
    assert_eq!(out.content["truncated"], false);

    // The database's row limit (100) sets `truncated`.
    let out = query
        .call(json!({"query": "SELECT generate_series(1, 1000) AS n"}))
        .await
        .unwrap();
    assert_eq!(out.content["rows"].as_array().unwrap().len(), 100);
    assert_eq!(out.content["truncated"], true);

    // The byte cap cuts whole rows of a wide result.
    let capped = SqlQueryTool::new(db.clone())
        .with_max_output_bytes(8 * 1024)
        .into_tool();
    let out = capped
        .call(
            json!({"query": format!("SELECT id, repeat(name, 100) AS wide FROM {t} ORDER BY id")}),
        )
        .await
        .unwrap();
    let bytes = serde_json::to_vec(&out.content).unwrap().len();
    let rows = out.content["rows"].as_array().unwrap();
    assert!(bytes <= 8 * 1024, "{bytes} bytes");
    assert!(!rows.is_empty() && rows.len() < 50, "{} rows", rows.len());
    assert_eq!(out.content["truncated"], true);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], json!(i + 1));
        assert_eq!(
            row[1].as_str().unwrap(),
            format!("item {}", i + 1).repeat(100)
        );
    }

    // The schema tool lists the table and its columns.
    let schema = SqlSchemaTool::new(db.clone()).into_tool();
    assert_eq!(schema.name(), "sql_schema");
    let all = schema.call(json!({})).await.unwrap().to_text();
    assert!(all.contains(&format!("CREATE TABLE {t}")), "{all}");
    let one = schema.call(json!({"table": t})).await.unwrap().to_text();
    assert!(one.starts_with(&format!("CREATE TABLE {t} (")), "{one}");
    for column in ["id integer NOT NULL", "name text NOT NULL", "price numeric"] {
        assert!(one.contains(column), "{column} missing from {one}");
    }
    let err = schema
        .call(json!({"table": "no_such_table"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::InvalidArguments(_)), "{err:?}");

    // A session advisory lock taken by a call does not outlive it (a rolled-back transaction
    // keeps it; the connection is reset before it goes back to the pool).
    let key: i64 = 8_000_000_000 + i64::from(std::process::id());
    let out = query
        .call(json!({"query": format!("SELECT pg_advisory_lock({key})")}))
        .await
        .unwrap();
    assert_eq!(out.content["rows"].as_array().unwrap().len(), 1);
    let held = psql(&format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND ((classid::bigint << 32) | objid::bigint) = {key}"
    ));
    assert_eq!(held, "0", "the advisory lock outlived the tool call");

    // A huge value is cut while it is fetched, and the output says so.
    let out = query
        .call(json!({"query": "SELECT repeat('x', 10000000) AS big FROM generate_series(1, 3)"}))
        .await
        .unwrap();
    assert_eq!(out.content["truncated"], true);
    assert!(serde_json::to_vec(&out.content).unwrap().len() <= 64 * 1024);

    assert_eq!(fx.checksum(), before, "the table changed");
}
