//! SQL question answering against the real PostgreSQL of the test command: read-only
//! transactions, statement timeout, row limit, multi-statement rejection, value decoding.
//!
//! Needs `DATABASE_URL`; locally run `eval "$(bash scripts/pg.sh start)"` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use catena_chains::SqlQaChain;
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{Chain, Error, SqlDatabase};
use catena_vectorstores::PostgresSqlDatabase;
use serde_json::json;
use tokio_postgres::NoTls;

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: these tests need PostgreSQL; start it with \
             `eval \"$(bash scripts/pg.sh start)\"` (and `bash scripts/pg.sh stop` afterwards)"
        )
    })
}

/// A table of cities with a unique name, created on a direct connection.
struct Fixture {
    client: tokio_postgres::Client,
    table: String,
}

impl Fixture {
    async fn new() -> Fixture {
        let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
            .await
            .expect("connect to DATABASE_URL");
        tokio::spawn(connection);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let table = format!("chains_sql_cities_{}_{nanos}", std::process::id());
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (id serial PRIMARY KEY, name text NOT NULL, population bigint, capital boolean);
                 INSERT INTO {table} (name, population, capital) VALUES
                   ('Paris', 2100000, true), ('Lyon', 520000, false), ('Nice', 340000, false);"
            ))
            .await
            .unwrap();
        Fixture { client, table }
    }

    /// The database as the superuser of the test server: privileged roles must be allowed
    /// explicitly (see `a_privileged_role_is_refused_by_default`).
    fn db(&self) -> PostgresSqlDatabase {
        PostgresSqlDatabase::builder()
            .url(database_url())
            .allow_privileged_role(true)
            .allowed_tables([self.table.as_str()])
            .max_rows(5)
            .statement_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    }

    async fn count(&self) -> i64 {
        self.client
            .query_one(&format!("SELECT count(*) FROM {}", self.table), &[])
            .await
            .unwrap()
            .get(0)
    }

    async fn drop(self) {
        self.client
            .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn table_info_describes_the_allowed_tables() {
    let f = Fixture::new().await;
    let info = f.db().table_info().await.unwrap();
    assert_eq!(
        info,
        format!(
            "CREATE TABLE {} (\n  id integer NOT NULL,\n  name text NOT NULL,\n  population bigint,\n  capital boolean\n);",
            f.table
        )
    );
    f.drop().await;
}

#[tokio::test]
async fn chain_answers_from_the_rows() {
    let f = Fixture::new().await;
    let sql = format!(
        "SELECT name, population FROM {} WHERE capital ORDER BY population DESC;",
        f.table
    );
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text(format!("```sql\n{sql}\n```"))
            .with_text("Paris."),
    );
    let chain = SqlQaChain::builder(Arc::new(f.db()), model.clone())
        .build()
        .unwrap();
    let out = chain
        .invoke("Which city is the capital?".into())
        .await
        .unwrap();
    assert_eq!(out.sql, sql);
    assert_eq!(out.rows.columns, vec!["name", "population"]);
    assert_eq!(out.rows.rows, vec![vec![json!("Paris"), json!(2_100_000)]]);
    assert!(!out.rows.truncated);
    assert_eq!(out.answer, "Paris.");
    let requests = model.requests();
    assert!(requests[0].messages[0]
        .text()
        .contains(&format!("CREATE TABLE {} (", f.table)));
    assert!(requests[1].messages[0]
        .text()
        .contains("SQLResult:\nname | population\nParis | 2100000\nAnswer:"));
    f.drop().await;
}

#[tokio::test]
async fn writes_fail_and_change_nothing() {
    let f = Fixture::new().await;
    let db = f.db();
    for sql in [
        format!("INSERT INTO {} (name) VALUES ('Evil')", f.table),
        format!("UPDATE {} SET population = 0", f.table),
        format!("DELETE FROM {}", f.table),
        format!("DROP TABLE {}", f.table),
        format!(
            "WITH x AS (INSERT INTO {} (name) VALUES ('Evil') RETURNING id) SELECT * FROM x",
            f.table
        ),
        format!("SELECT nextval('{}_id_seq')", f.table),
    ] {
        let err = db.run_read_only(&sql).await.unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("read-only transaction")),
            "{sql}: {err:?}"
        );
    }
    // The transaction cannot be switched to read-write: a query already ran in it.
    let err = db
        .run_read_only("SET TRANSACTION READ WRITE")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    // Written by the model, through the chain.
    let model = Arc::new(
        ScriptedChatModel::new().with_text(format!("```sql\nDROP TABLE {};\n```", f.table)),
    );
    let chain = SqlQaChain::builder(Arc::new(db), model).build().unwrap();
    let err = chain.invoke("Drop it".into()).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("read-only")),
        "{err:?}"
    );
    assert_eq!(f.count().await, 3);
    f.drop().await;
}

#[tokio::test]
async fn multiple_statements_are_rejected() {
    let f = Fixture::new().await;
    let db = f.db();
    let err = db
        .run_read_only(&format!("SELECT 1; DROP TABLE {}", f.table))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("more than one statement")),
        "{err:?}"
    );
    let err = db
        .run_read_only(&format!("COMMIT; DELETE FROM {}", f.table))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
    // A semicolon inside a string is not a separator; a trailing one is allowed.
    let rows = db.run_read_only("SELECT 'a;b' AS s;").await.unwrap();
    assert_eq!(rows.rows, vec![vec![json!("a;b")]]);
    assert_eq!(f.count().await, 3);
    f.drop().await;
}

#[tokio::test]
async fn slow_queries_hit_the_statement_timeout() {
    let f = Fixture::new().await;
    let db = f.db();
    let start = Instant::now();
    let err = db.run_read_only("SELECT pg_sleep(5)").await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d) if d == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    // The pooled connection is still usable, with the limit still in force.
    let rows = db.run_read_only("SELECT 1 AS one").await.unwrap();
    assert_eq!(rows.rows, vec![vec![json!(1)]]);
    f.drop().await;
}

#[tokio::test]
async fn the_row_limit_holds() {
    let f = Fixture::new().await;
    let db = f.db();
    let rows = db
        .run_read_only("SELECT g AS n FROM generate_series(1, 1000000) AS g")
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 5);
    assert!(rows.truncated);
    assert_eq!(rows.rows[4], vec![json!(5)]);
    let rows = db
        .run_read_only("SELECT g AS n FROM generate_series(1, 5) AS g")
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), 5);
    assert!(!rows.truncated);
    f.drop().await;
}

#[tokio::test]
async fn values_are_decoded_to_json() {
    let f = Fixture::new().await;
    let rows = f
        .db()
        .run_read_only(
            "SELECT 1::int2 AS a, 2::int4 AS b, 3::int8 AS c, 1.5::float8 AS d, 12.340::numeric AS e, \
             (-0.05)::numeric AS f, 'x'::varchar AS g, true AS h, NULL::text AS i, \
             DATE '2024-02-29' AS j, TIMESTAMP '2024-02-29 13:14:15.5' AS k, \
             '{\"k\": [1]}'::jsonb AS l, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS m, \
             12345678901234567890.5::numeric AS n",
        )
        .await
        .unwrap();
    assert_eq!(
        rows.rows[0],
        vec![
            json!(1),
            json!(2),
            json!(3),
            json!(1.5),
            json!(12.34),
            json!(-0.05),
            json!("x"),
            json!(true),
            json!(null),
            json!("2024-02-29"),
            json!("2024-02-29T13:14:15.500000"),
            json!({"k": [1]}),
            json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            json!("12345678901234567890.5"),
        ]
    );
    f.drop().await;
}

#[tokio::test]
async fn a_privileged_role_is_refused_by_default() {
    // The test server's role is a superuser: a read-only transaction would not stop it from
    // reading server files or running programs, so the default refuses to run anything.
    let db = PostgresSqlDatabase::builder()
        .url(database_url())
        .build()
        .unwrap();
    let err = db.run_read_only("SELECT 1").await.unwrap_err();
    assert!(
        matches!(err, catena_core::Error::InvalidConfig(ref m) if m.contains("superuser")),
        "{err:?}"
    );
    let err = db
        .run_read_only("SELECT length(pg_read_file('/etc/passwd'))")
        .await
        .unwrap_err();
    assert!(
        matches!(err, catena_core::Error::InvalidConfig(_)),
        "{err:?}"
    );
}

/// Runs `sql` (one or more statements) on a fresh connection as the `DATABASE_URL` role and
/// returns the first column of every row as text.
async fn admin(sql: &str) -> Vec<String> {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let driver = tokio::spawn(connection);
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect();
    drop(client);
    let _ = driver.await;
    rows
}

/// A unique lower-case suffix for role names.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{nanos}", std::process::id())
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

#[tokio::test]
async fn dollar_quotes_around_multibyte_text_do_not_panic() {
    let db = PostgresSqlDatabase::builder()
        .url(database_url())
        .allow_privileged_role(true)
        .build()
        .unwrap();
    let rows = db.run_read_only("SELECT $$Zürich$$ AS city").await.unwrap();
    assert_eq!(rows.rows, vec![vec![json!("Zürich")]]);
    let rows = db
        .run_read_only("SELECT $tag$Zürich; 東京 🚀$tag$ AS s;")
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![json!("Zürich; 東京 🚀")]]);
    // Text that is not SQL is refused or fails; it never panics.
    for sql in ["$$Zürich", "SELECT $ü$x$ü$", "SELECT 'ü' -- ü\n; ü", "$ü"] {
        let _ = db.run_read_only(sql).await;
    }
}

/// The child half of `huge_cells_stay_out_of_client_memory`, run alone in its own process.
const RSS_CHILD_ENV: &str = "CATENA_SQL_RSS_CHILD";

/// `VmRSS` or `VmHWM` of this process, in bytes.
fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[test]
fn huge_cells_stay_out_of_client_memory() {
    if std::env::var_os(RSS_CHILD_ENV).is_some() {
        return huge_cells_child();
    }
    // Peak RSS is per process: measure in a process that runs only this test.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "huge_cells_stay_out_of_client_memory",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}\n{stderr}");
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child did not run: {stdout}"
    );
}

fn huge_cells_child() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = PostgresSqlDatabase::builder()
            .url(database_url())
            .allow_privileged_role(true)
            .max_connections(1)
            .statement_timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        // Warm up: the pool, the connection and the decoder are allocated before measuring.
        db.run_read_only("SELECT repeat('x', 10) AS s")
            .await
            .unwrap();
        let rss_before = proc_status_bytes("VmRSS:");
        let rows = db
            .run_read_only("SELECT repeat('x', 900000000) FROM generate_series(1,3)")
            .await
            .unwrap();
        let hwm_after = proc_status_bytes("VmHWM:");
        let growth = hwm_after.saturating_sub(rss_before);
        println!(
            "RSS before {} MiB, peak after {} MiB, growth {} MiB; {} rows, cells of {:?} bytes",
            rss_before >> 20,
            hwm_after >> 20,
            growth >> 20,
            rows.rows.len(),
            rows.rows
                .iter()
                .map(|r| r[0].as_str().map_or(0, str::len))
                .collect::<Vec<_>>()
        );
        assert!(rows.truncated, "the result must say it was truncated");
        assert!(!rows.rows.is_empty());
        for row in &rows.rows {
            let cell = row[0].as_str().unwrap();
            assert!(cell.starts_with("xxxx"), "{}", &cell[..cell.len().min(40)]);
            assert!(cell.len() <= 64 * 1024, "a cell of {} bytes", cell.len());
        }
        assert!(growth < 64 << 20, "peak RSS grew by {} MiB", growth >> 20);
    });
}

#[tokio::test]
async fn session_state_does_not_survive_a_call() {
    // One connection, so the second call gets the connection the first one used.
    let db = PostgresSqlDatabase::builder()
        .url(database_url())
        .allow_privileged_role(true)
        .max_connections(1)
        .build()
        .unwrap();
    let key: i64 = 7_000_000_000 + i64::from(std::process::id());
    db.run_read_only(&format!("SELECT pg_advisory_lock({key})"))
        .await
        .unwrap();
    let held = admin(&format!(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND ((classid::bigint << 32) | objid::bigint) = {key}"
    ))
    .await;
    assert_eq!(held, vec!["0"], "the advisory lock outlived the call");

    db.run_read_only("PREPARE catena_leak AS SELECT 1")
        .await
        .unwrap();
    let rows = db
        .run_read_only("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE from_sql")
        .await
        .unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![json!(0)]],
        "a PREPAREd statement leaked"
    );

    db.run_read_only("SELECT set_config('application_name', 'leaked', false)")
        .await
        .unwrap();
    db.run_read_only("SELECT set_config('search_path', 'leaked', false)")
        .await
        .unwrap();
    let rows = db
        .run_read_only(
            "SELECT current_setting('application_name') AS a, current_setting('search_path') AS s",
        )
        .await
        .unwrap();
    assert_ne!(rows.rows[0][0], json!("leaked"));
    assert_ne!(rows.rows[0][1], json!("leaked"));
    // The connection is still usable afterwards, types looked up by the driver included.
    let rows = db
        .run_read_only("SELECT ARRAY[1, 2] AS a, 'x'::text AS t")
        .await
        .unwrap();
    assert_eq!(rows.rows[0][1], json!("x"));
}

#[tokio::test]
async fn members_of_privileged_roles_are_refused() {
    let s = unique();
    let (admin_role, mid, login) = (
        format!("sql_admin_{s}"),
        format!("sql_mid_{s}"),
        format!("sql_login_{s}"),
    );
    let (signal_mid, signaller, plain) = (
        format!("sql_sigmid_{s}"),
        format!("sql_signaller_{s}"),
        format!("sql_plain_{s}"),
    );
    admin(&format!(
        "CREATE ROLE {admin_role} SUPERUSER NOLOGIN;
         CREATE ROLE {mid} NOLOGIN;
         CREATE ROLE {login} LOGIN PASSWORD 'pw' NOSUPERUSER;
         GRANT {admin_role} TO {mid};
         GRANT {mid} TO {login};
         CREATE ROLE {signal_mid} NOLOGIN;
         CREATE ROLE {signaller} LOGIN PASSWORD 'pw' NOSUPERUSER;
         GRANT pg_signal_backend TO {signal_mid};
         GRANT {signal_mid} TO {signaller};
         CREATE ROLE {plain} LOGIN PASSWORD 'pw' NOSUPERUSER;"
    ))
    .await;
    let run = |role: String| async move {
        PostgresSqlDatabase::builder()
            .url(url_as(&role, "pw"))
            .build()
            .unwrap()
            .run_read_only(&format!(
                "SELECT set_config('role', '{role}', true) IS NOT NULL AS ok"
            ))
            .await
    };
    let transitive_superuser = run(login.clone()).await;
    let signal = run(signaller.clone()).await;
    let ok = run(plain.clone()).await;
    admin(&format!(
        "DROP ROLE {login}; DROP ROLE {mid}; DROP ROLE {admin_role};
         DROP ROLE {signaller}; DROP ROLE {signal_mid}; DROP ROLE {plain};"
    ))
    .await;
    let err = transitive_superuser.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains(&admin_role) && m.contains(&login)),
        "{err:?}"
    );
    let err = signal.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("pg_signal_backend")),
        "{err:?}"
    );
    assert_eq!(ok.unwrap().rows, vec![vec![json!(true)]]);
}
