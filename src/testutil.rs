//! Helpers shared by unit and integration tests (real peers only: a scratch database on the
//! machine's PostgreSQL, free ports). Compiled into the library so `tests/` can use them too.

/// A database of its own on the local PostgreSQL for one test run, dropped afterwards.
pub struct ScratchPostgres {
    /// URL of the scratch database.
    pub url: String,
    admin_url: String,
    name: String,
}

/// The server tests use: `BARRAGE_TEST_POSTGRES` or the machine's trust-auth PostgreSQL.
pub fn postgres_admin_url() -> String {
    std::env::var("BARRAGE_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

impl ScratchPostgres {
    /// Creates `barrage_t_<random>`; panics with how to fix it when PostgreSQL is not there.
    pub async fn create() -> ScratchPostgres {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let admin_url = postgres_admin_url();
        let name = format!(
            "barrage_t_{}",
            crate::secrets::random_secret(10).to_ascii_lowercase()
        );
        let mut conn = sqlx::AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                "PostgreSQL is needed for this test at {admin_url} (set BARRAGE_TEST_POSTGRES, or \
                 start it: pg_ctlcluster $(ls /etc/postgresql) main start): {e}"
            )
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE on the test PostgreSQL");
        let _ = conn.close().await;
        let mut url = url::Url::parse(&admin_url).expect("postgres admin url");
        url.set_path(&format!("/{name}"));
        ScratchPostgres {
            url: url.to_string(),
            admin_url,
            name,
        }
    }

    /// Drops the scratch database (connections to it must be closed first).
    pub async fn drop_database(self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::AnyConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut conn)
            .await;
            let _ = conn.close().await;
        }
    }
}

/// The admin key [`test_config`] sets.
pub const TEST_ADMIN_KEY: &str = "test-admin-key-0123456789";
/// The token secret [`test_config`] sets.
pub const TEST_TOKEN_SECRET: &str = "test-token-secret-0123456789";

/// Defaults with free ports on 127.0.0.1, known secrets, and everything under `data_dir`.
pub fn test_config(data_dir: &std::path::Path) -> crate::config::Config {
    let mut config = crate::config::Config::from_toml_str("").expect("embedded defaults");
    config.data_dir = data_dir.to_path_buf();
    config.http.listen = "127.0.0.1:0".parse().expect("addr");
    config.rtmp.listen = "127.0.0.1:0".parse().expect("addr");
    config.auth.admin_key = TEST_ADMIN_KEY.to_string();
    config.auth.token_secret = TEST_TOKEN_SECRET.to_string();
    config
}
