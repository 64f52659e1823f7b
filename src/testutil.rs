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

/// Defaults with free ports on 127.0.0.1, known secrets, and everything under `data_dir`. A
/// broadcast ends with its publish (`rtmp.reconnect_grace_s = 0`), so tests of other things
/// see it end at once and a later push start a new session; the reconnect tests set the grace.
pub fn test_config(data_dir: &std::path::Path) -> crate::config::Config {
    let mut config = crate::config::Config::from_toml_str("").expect("embedded defaults");
    config.data_dir = data_dir.to_path_buf();
    config.rtmp.reconnect_grace_s = 0;
    config.http.listen = "127.0.0.1:0".parse().expect("addr");
    config.rtmp.listen = "127.0.0.1:0".parse().expect("addr");
    config.auth.admin_key = TEST_ADMIN_KEY.to_string();
    config.auth.token_secret = TEST_TOKEN_SECRET.to_string();
    // Every test client shares 127.0.0.1: page tests join as guests many times.
    config.auth.guest_tokens_per_ip_per_min = 600;
    config
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A real S3-protocol server (`s3s-fs`, installed by scripts/test.sh) on a free port, with its
/// data in a folder that survives [`S3Server::stop`] so outage tests can restart it.
pub struct S3Server {
    pub port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

/// Where `s3s-fs` is: on PATH or in ~/.cargo/bin.
fn s3s_fs_binary() -> std::path::PathBuf {
    if let Ok(paths) = std::env::var("PATH") {
        for p in std::env::split_paths(&paths) {
            let candidate = p.join("s3s-fs");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let candidate = std::path::Path::new(&home).join(".cargo/bin/s3s-fs");
    if candidate.is_file() {
        return candidate;
    }
    panic!(
        "s3s-fs (a real S3-protocol server) is needed for this test: run scripts/test.sh, or \
         `cargo install s3s-fs@0.14.1 --locked --features binary`"
    )
}

impl S3Server {
    /// Starts a server with bucket `barrage` under `dir`.
    pub fn start(dir: &std::path::Path) -> S3Server {
        std::fs::create_dir_all(dir.join("barrage")).expect("bucket folder");
        let mut server = S3Server {
            port: free_port(),
            bucket: "barrage".into(),
            access_key: "barrage-test".into(),
            secret_key: "barrage-test-secret".into(),
            dir: dir.to_path_buf(),
            child: None,
        };
        server.restart();
        server
    }

    /// (Re)starts the process on the same port and folder; waits until it accepts.
    pub fn restart(&mut self) {
        let child = std::process::Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start s3s-fs");
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("s3s-fs did not start on port {}", self.port);
    }

    /// Stops the process (data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Points a config's storage at this server.
    pub fn configure(&self, config: &mut crate::config::Config, prefix: &str) {
        config.storage.url = format!("s3://{}/{prefix}", self.bucket);
        config.storage.endpoint = format!("http://127.0.0.1:{}", self.port);
        config.storage.allow_http = true;
        config.storage.region = "us-east-1".into();
        config.storage.access_key = self.access_key.clone();
        config.storage.secret_key = self.secret_key.clone();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Redis tests share: `BARRAGE_TEST_REDIS` or the machine's Redis on 127.0.0.1:6379.
pub fn redis_url() -> String {
    std::env::var("BARRAGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// Fails (never skips) when Redis does not answer at `url`, saying how to start it.
pub async fn require_redis(url: &str) {
    let answer = async {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!(
            "Redis is needed for this test at {url} (set BARRAGE_TEST_REDIS, or start it: \
             redis-server --daemonize yes --port 6379 --save '' --appendonly no): {e}"
        ),
        Err(_) => panic!("Redis is needed for this test at {url} and did not answer in 5 s"),
    }
}

/// A key prefix of its own for one test, so tests can share one Redis (never FLUSHALL).
pub fn redis_prefix(test: &str) -> String {
    format!(
        "bt-{test}-{}",
        crate::secrets::random_secret(8).to_ascii_lowercase()
    )
}

/// Deletes every key under `prefix` (SCAN + DEL; other users of the Redis are untouched).
pub async fn redis_cleanup(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let mut cursor = 0u64;
    loop {
        let step: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(500)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = step else { return };
        if !keys.is_empty() {
            let _ = redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// A Redis server of its own (`redis-server`, nothing kept on disk) on a free port, that an
/// outage test stops and starts again on the same port.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl RedisServer {
    /// Starts `redis-server` on a free port; panics with how to install it when missing.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process on the same port, empty; waits until it accepts.
    pub fn restart(&mut self) {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or("redis-server");
        let child = std::process::Command::new(binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "redis-server is needed for this test (apt-get install -y redis-server): {e}"
                )
            });
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Stops the process (everything in it is gone: it keeps nothing on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
