//! One object store for everything barrage publishes (HLS media, playlists, danmaku files):
//! a local folder by default, or an S3-compatible bucket. Keys are the same paths HTTP serves,
//! so a CDN can pull from barrage or straight from the bucket.
//!
//! The local store cannot keep attributes (object_store refuses a put with them), so HTTP
//! headers are derived from the key ([`ObjectClass`]) on every path; S3 objects also carry
//! them so a CDN pulling from the bucket sees the same headers.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutOptions, PutPayload, RetryConfig,
};

use crate::config::Config;

mod in_place;

use in_place::InPlaceWriter;

/// A storage failure, with the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage.url `{url}` is not supported: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot open storage at {url}: {source}")]
    Open {
        url: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("`{key}` is not a valid object key")]
    BadKey { key: String },
    #[error("object store failed on `{key}`: {source}")]
    Store {
        key: String,
        source: object_store::Error,
    },
    #[error("requested range does not fit `{key}`")]
    BadRange { key: String },
}

/// What kind of object a key names; decides Content-Type and Cache-Control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// A live or VOD playlist: changes every segment, cached about a second.
    Playlist,
    /// fMP4 init or media segment: written once, never changes.
    Media,
    /// A danmaku batch file: written once, never changes.
    DanmakuBatch,
    /// A room's danmaku index: changes every period.
    DanmakuIndex,
    /// Anything else (exported XML, thumbnails): short cache.
    Other,
}

impl ObjectClass {
    /// Classifies a key by its name.
    pub fn of(key: &str) -> ObjectClass {
        let name = key.rsplit('/').next().unwrap_or(key);
        if name.ends_with(".m3u8") {
            ObjectClass::Playlist
        } else if name.ends_with(".m4s") || name.ends_with(".mp4") {
            ObjectClass::Media
        } else if key.starts_with("danmaku/") && name == "index.json" {
            ObjectClass::DanmakuIndex
        } else if key.starts_with("danmaku/") && (name.ends_with(".json") || name.ends_with(".pb"))
        {
            ObjectClass::DanmakuBatch
        } else {
            ObjectClass::Other
        }
    }

    /// Whether objects of this class are rewritten under the same key while a room is live
    /// (so the local store rewrites them in place, see [`in_place`]).
    fn is_rewritten(self) -> bool {
        matches!(
            self,
            ObjectClass::Playlist | ObjectClass::DanmakuIndex | ObjectClass::Other
        )
    }

    /// The Cache-Control header for this class.
    pub fn cache_control(self) -> &'static str {
        match self {
            ObjectClass::Playlist | ObjectClass::DanmakuIndex => "public, max-age=1",
            ObjectClass::Media => "public, max-age=31536000, immutable",
            ObjectClass::DanmakuBatch => "public, max-age=86400, immutable",
            ObjectClass::Other => "public, max-age=5",
        }
    }
}

/// The Content-Type for a key, from its extension.
pub fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit('.').next().unwrap_or("");
    match ext {
        "m3u8" => "application/vnd.apple.mpegurl",
        "m4s" => "video/iso.segment",
        "mp4" => "video/mp4",
        "json" => "application/json",
        "pb" => "application/x-protobuf",
        "xml" => "application/xml; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        _ => "application/octet-stream",
    }
}

/// An object read back, with what HTTP needs to serve it.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub body: Bytes,
    /// Total object size (the body may be a range of it).
    pub size: u64,
    /// The byte range `body` covers.
    pub range: Range<u64>,
    pub e_tag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// The outcome of a conditional read.
#[derive(Debug)]
pub enum Fetched<T = StoredObject> {
    Found(T),
    NotModified,
    NotFound,
}

/// An object being read: its body arrives in chunks as the store sends them, so serving a
/// large segment (or many at once) holds a chunk per response, not the whole object.
pub struct StreamedObject {
    pub body: futures::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
    /// Total object size (the body may be a range of it).
    pub size: u64,
    /// The byte range `body` covers.
    pub range: Range<u64>,
    pub e_tag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Debug for StreamedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedObject")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The shared object store handle.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket (`s3://bucket/prefix`); empty for local folders.
    prefix: String,
    /// Human-readable location for logs.
    location: String,
    /// The local folder store, which writes objects itself ([`in_place`]: rewritten ones in
    /// place, new ones staged then renamed); None for S3.
    local: Option<LocalObjects>,
}

/// The local store's own handle, for its writes.
#[derive(Clone, Debug)]
struct LocalObjects {
    store: Arc<LocalFileSystem>,
    writer: Arc<InPlaceWriter>,
}

impl Storage {
    /// Opens the store named by `storage.url` (empty: `<data_dir>`).
    pub fn from_config(config: &Config) -> Result<Storage, StorageError> {
        let url = config.storage.url.trim();
        if url.is_empty() {
            return Storage::local(&config.data_dir);
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Storage::local(std::path::Path::new(path));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(StorageError::BadUrl {
                    url: url.to_string(),
                    reason: "no bucket name".into(),
                });
            }
            let timeout = Duration::from_secs(config.storage.request_timeout_s.max(1));
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(&config.storage.region)
                // Short timeouts and few retries: callers retry in order themselves, and one
                // room's writes must not hang on a dead store for minutes.
                .with_client_options(
                    ClientOptions::new()
                        .with_allow_http(config.storage.allow_http)
                        .with_connect_timeout(Duration::from_secs(1))
                        .with_timeout(timeout),
                )
                .with_retry(RetryConfig {
                    max_retries: 2,
                    retry_timeout: Duration::from_secs(2),
                    backoff: object_store::BackoffConfig {
                        init_backoff: Duration::from_millis(50),
                        max_backoff: Duration::from_millis(500),
                        base: 2.0,
                    },
                });
            if !config.storage.access_key.is_empty() {
                builder = builder
                    .with_access_key_id(&config.storage.access_key)
                    .with_secret_access_key(&config.storage.secret_key);
            }
            if !config.storage.endpoint.is_empty() {
                builder = builder.with_endpoint(&config.storage.endpoint);
            }
            let store = builder.build().map_err(|e| StorageError::Open {
                url: url.to_string(),
                source: Box::new(e),
            })?;
            return Ok(Storage {
                store: Arc::new(store),
                prefix: prefix.trim_matches('/').to_string(),
                location: url.to_string(),
                local: None,
            });
        }
        Err(StorageError::BadUrl {
            url: url.to_string(),
            reason: "use file:///path or s3://bucket/prefix".into(),
        })
    }

    /// A local folder store (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Storage, StorageError> {
        let open_err = |e: Box<dyn std::error::Error + Send + Sync>| StorageError::Open {
            url: dir.display().to_string(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| open_err(Box::new(e)))?;
        let abs = std::fs::canonicalize(dir).map_err(|e| open_err(Box::new(e)))?;
        let store =
            Arc::new(LocalFileSystem::new_with_prefix(&abs).map_err(|e| open_err(Box::new(e)))?);
        Ok(Storage {
            store: store.clone(),
            prefix: String::new(),
            location: format!("file://{}", abs.display()),
            local: Some(LocalObjects {
                store,
                writer: Arc::new(InPlaceWriter::default()),
            }),
        })
    }

    /// Where objects go, for logs.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        let bad = || StorageError::BadKey {
            key: key.to_string(),
        };
        // '#' never appears in our keys; the local store's spares are named with it.
        if key.is_empty()
            || key.starts_with('/')
            || key.contains('#')
            || key
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad());
        }
        let full = if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        };
        ObjectPath::parse(full).map_err(|_| bad())
    }

    /// Writes an object whole (atomic on both backends), with headers where the store keeps them.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        self.put_in_order(vec![(key.to_string(), body)]).await
    }

    /// Writes objects one after the other (each as [`Storage::put`]), stopping at the first
    /// that fails. On the local store they are written in one trip to the blocking pool: the
    /// hand-off to a pool thread and back cost more than writing a playlist or a danmaku file.
    pub async fn put_in_order(&self, objects: Vec<(String, Bytes)>) -> Result<(), StorageError> {
        let Some(local) = &self.local else {
            for (key, body) in objects {
                self.put_remote(&key, body).await?;
            }
            return Ok(());
        };
        let mut files = Vec::with_capacity(objects.len());
        for (key, body) in objects {
            let path = self.path(&key)?;
            let file =
                local
                    .store
                    .path_to_filesystem(&path)
                    .map_err(|source| StorageError::Store {
                        key: key.clone(),
                        source,
                    })?;
            let rewritten = ObjectClass::of(&key).is_rewritten();
            files.push((key, file, body, rewritten));
        }
        let writer = local.writer.clone();
        let written = tokio::task::spawn_blocking(move || {
            for (key, file, body, rewritten) in files {
                let started = std::time::Instant::now();
                let result = if rewritten {
                    writer.write(&file, &body)
                } else {
                    writer.create(&file, &body)
                };
                record_put(started, body.len(), result.is_ok());
                if let Err(e) = result {
                    return Err((key, e));
                }
            }
            Ok(())
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err((key, e))) => Err(StorageError::Store {
                source: io_error(&key, e),
                key,
            }),
            Err(e) => Err(StorageError::Store {
                key: String::new(),
                source: io_error("(write task)", std::io::Error::other(e)),
            }),
        }
    }

    /// One object to S3, with its headers.
    async fn put_remote(&self, key: &str, body: Bytes) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let mut attrs = Attributes::new();
        attrs.insert(Attribute::ContentType, content_type(key).into());
        attrs.insert(
            Attribute::CacheControl,
            ObjectClass::of(key).cache_control().into(),
        );
        let opts = PutOptions {
            attributes: attrs,
            ..PutOptions::default()
        };
        let started = std::time::Instant::now();
        let len = body.len();
        let result = self
            .store
            .put_opts(&path, PutPayload::from_bytes(body), opts)
            .await;
        record_put(started, len, result.is_ok());
        result.map(|_| ()).map_err(|source| StorageError::Store {
            key: key.to_string(),
            source,
        })
    }

    /// Reads an object whole (or a byte range of it), honouring If-None-Match.
    pub async fn get(
        &self,
        key: &str,
        range: Option<GetRange>,
        if_none_match: Option<String>,
    ) -> Result<Fetched, StorageError> {
        let object = match self.get_stream(key, range, if_none_match).await? {
            Fetched::Found(o) => o,
            Fetched::NotModified => return Ok(Fetched::NotModified),
            Fetched::NotFound => return Ok(Fetched::NotFound),
        };
        let mut body = bytes::BytesMut::new();
        let mut chunks = object.body;
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(|source| StorageError::Store {
                key: key.to_string(),
                source,
            })?);
        }
        Ok(Fetched::Found(StoredObject {
            body: body.freeze(),
            size: object.size,
            range: object.range,
            e_tag: object.e_tag,
            last_modified: object.last_modified,
        }))
    }

    /// Like [`Storage::get`], with the body as a stream of chunks (what HTTP serves).
    pub async fn get_stream(
        &self,
        key: &str,
        range: Option<GetRange>,
        if_none_match: Option<String>,
    ) -> Result<Fetched<StreamedObject>, StorageError> {
        let path = self.path(key)?;
        let opts = GetOptions {
            range,
            if_none_match: if_none_match.clone(),
            ..Default::default()
        };
        let result = match self.store.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::NotFound),
            Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::NotModified),
            Err(object_store::Error::InvalidPath { .. }) => return Ok(Fetched::NotFound),
            Err(e) if is_range_error(&e) => {
                return Err(StorageError::BadRange {
                    key: key.to_string(),
                })
            }
            Err(source) => {
                return Err(StorageError::Store {
                    key: key.to_string(),
                    source,
                })
            }
        };
        let meta = result.meta.clone();
        // Not every S3-compatible server honours If-None-Match: check it here too.
        if let (Some(wanted), Some(tag)) = (if_none_match.as_deref(), meta.e_tag.as_deref()) {
            if etag_matches(wanted, tag) {
                return Ok(Fetched::NotModified);
            }
        }
        let range = result.range.clone();
        Ok(Fetched::Found(StreamedObject {
            body: result.into_stream(),
            size: meta.size,
            range,
            e_tag: meta.e_tag,
            last_modified: meta.last_modified,
        }))
    }

    /// Reads a whole object if it exists.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        match self.get(key, None, None).await? {
            Fetched::Found(o) => Ok(Some(o.body)),
            _ => Ok(None),
        }
    }

    /// Lists keys under a prefix (relative to the store's own prefix).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = self.path(prefix.trim_end_matches('/'))?;
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&path));
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|source| StorageError::Store {
                key: prefix.to_string(),
                source,
            })?;
            let full = meta.location.to_string();
            let key = if self.prefix.is_empty() {
                full
            } else {
                full.strip_prefix(&format!("{}/", self.prefix))
                    .unwrap_or(&full)
                    .to_string()
            };
            out.push(key);
        }
        out.sort();
        Ok(out)
    }

    /// Deletes one object (already gone is fine), and its spares on the local store.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        let failed = |source| StorageError::Store {
            key: key.to_string(),
            source,
        };
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(source) => return Err(failed(source)),
        }
        if let Some(local) = &self.local {
            local.remove_spares(&path).await.map_err(failed)?;
        }
        Ok(())
    }

    /// Deletes every object under a prefix (a whole old session, say).
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
    }
}

/// Put metrics, the same for both stores.
fn record_put(started: std::time::Instant, bytes: usize, ok: bool) {
    metrics::histogram!("barrage_storage_put_seconds").record(started.elapsed().as_secs_f64());
    if ok {
        metrics::counter!("barrage_storage_put_bytes_total").increment(bytes as u64);
    } else {
        metrics::counter!("barrage_storage_put_failures_total").increment(1);
    }
}

impl LocalObjects {
    /// Removes the spares of the object at `path` (none is fine).
    async fn remove_spares(&self, path: &ObjectPath) -> object_store::Result<()> {
        let file = self.store.path_to_filesystem(path)?;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.remove_spares(&file))
            .await
            .map_err(|e| io_error(path.as_ref(), std::io::Error::other(e)))?
            .map_err(|e| io_error(path.as_ref(), e))
    }
}

/// An I/O failure on a local object, as object_store reports its own: the `io::Error` stays
/// in the source chain, with its kind (the writer tells a folder in the way from a full disk
/// by it), and names the file.
fn io_error(path: &str, source: std::io::Error) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(std::io::Error::new(
            source.kind(),
            format!("{path}: {source}"),
        )),
    }
}

/// Whether an If-None-Match value (a list, maybe quoted or weak) names this ETag.
fn etag_matches(if_none_match: &str, tag: &str) -> bool {
    let bare = |t: &str| {
        t.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_string()
    };
    let tag = bare(tag);
    if_none_match
        .split(',')
        .any(|candidate| candidate.trim() == "*" || bare(candidate) == tag)
}

fn is_range_error(e: &object_store::Error) -> bool {
    let text = e.to_string();
    text.contains("ange") && (text.contains("not satisf") || text.contains("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_types_follow_the_key() {
        assert_eq!(ObjectClass::of("hls/demo/live.m3u8"), ObjectClass::Playlist);
        assert_eq!(ObjectClass::of("hls/demo/s1/init.mp4"), ObjectClass::Media);
        assert_eq!(ObjectClass::of("hls/demo/s1/00001.m4s"), ObjectClass::Media);
        assert_eq!(
            ObjectClass::of("danmaku/demo/index.json"),
            ObjectClass::DanmakuIndex
        );
        assert_eq!(
            ObjectClass::of("danmaku/demo/s1/7.json"),
            ObjectClass::DanmakuBatch
        );
        assert!(ObjectClass::Media.cache_control().contains("immutable"));
        assert!(ObjectClass::Playlist.cache_control().contains("max-age=1"));
        assert_eq!(content_type("a/b.m3u8"), "application/vnd.apple.mpegurl");
    }

    #[tokio::test]
    async fn rewritten_objects_hide_their_spares_and_delete_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path()).unwrap();
        for i in 0..4 {
            s.put("hls/r/s1/index.m3u8", Bytes::from(format!("v{i}")))
                .await
                .unwrap();
        }
        assert_eq!(
            s.get_bytes("hls/r/s1/index.m3u8").await.unwrap().unwrap(),
            "v3"
        );
        // The spares are on disk, but no key names them.
        assert_eq!(
            std::fs::read_dir(dir.path().join("hls/r/s1"))
                .unwrap()
                .count(),
            3
        );
        assert_eq!(
            s.list("hls/r/s1").await.unwrap(),
            vec!["hls/r/s1/index.m3u8"]
        );
        assert!(matches!(
            s.get_bytes("hls/r/s1/index.m3u8#0").await,
            Err(StorageError::BadKey { .. })
        ));
        assert_eq!(s.delete_prefix("hls/r/s1").await.unwrap(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path().join("hls/r/s1"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn a_large_object_streams_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path()).unwrap();
        let big = Bytes::from(vec![7u8; 4 << 20]);
        s.put("hls/r/s/9.m4s", big.clone()).await.unwrap();
        let Fetched::Found(o) = s.get_stream("hls/r/s/9.m4s", None, None).await.unwrap() else {
            panic!("missing")
        };
        let chunks: Vec<Bytes> = o.body.map(|c| c.unwrap()).collect().await;
        assert!(chunks.len() > 1, "read in {} chunk(s)", chunks.len());
        assert!(chunks.iter().all(|c| c.len() < big.len()));
        assert_eq!(chunks.iter().map(Bytes::len).sum::<usize>(), big.len());
    }

    #[tokio::test]
    async fn local_round_trip_range_and_bad_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::local(dir.path()).unwrap();
        s.put("hls/r/s/1.m4s", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        let Fetched::Found(o) = s
            .get("hls/r/s/1.m4s", Some(GetRange::Bounded(2..5)), None)
            .await
            .unwrap()
        else {
            panic!("missing")
        };
        assert_eq!(&o.body[..], b"234");
        assert_eq!(o.size, 10);
        let etag = o.e_tag.clone().unwrap();
        assert!(matches!(
            s.get("hls/r/s/1.m4s", None, Some(etag)).await.unwrap(),
            Fetched::NotModified
        ));
        assert!(matches!(
            s.get("hls/r/s/2.m4s", None, None).await.unwrap(),
            Fetched::NotFound
        ));
        assert!(s.get("../etc/passwd", None, None).await.is_err());
        assert_eq!(s.list("hls/r").await.unwrap(), vec!["hls/r/s/1.m4s"]);
        assert_eq!(s.delete_prefix("hls/r/s").await.unwrap(), 1);
        assert!(s.list("hls/r").await.unwrap().is_empty());
    }
}

#[cfg(test)]
mod s3_tests {
    use super::*;

    /// The same calls against a real S3-protocol server: attributes kept, ranges, 304, listing.
    #[tokio::test]
    async fn s3_round_trip_with_attributes() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = crate::testutil::S3Server::start(dir.path());
        let mut config = crate::testutil::test_config(dir.path());
        s3.configure(&mut config, "pre/fix");
        let s = Storage::from_config(&config).unwrap();
        s.put("hls/r/s/init.mp4", Bytes::from_static(b"abcdef"))
            .await
            .unwrap();
        let Fetched::Found(o) = s
            .get("hls/r/s/init.mp4", Some(GetRange::Bounded(1..3)), None)
            .await
            .unwrap()
        else {
            panic!("missing")
        };
        assert_eq!(&o.body[..], b"bc");
        assert!(matches!(
            s.get("hls/r/s/init.mp4", None, o.e_tag.clone())
                .await
                .unwrap(),
            Fetched::NotModified
        ));
        assert_eq!(s.list("hls/r").await.unwrap(), vec!["hls/r/s/init.mp4"]);
        // The object sits under the prefix in the bucket, with its headers for a CDN.
        let raw = s
            .store
            .get_opts(
                &ObjectPath::from("pre/fix/hls/r/s/init.mp4"),
                GetOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            raw.attributes
                .get(&Attribute::CacheControl)
                .map(|v| v.as_ref()),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(s.delete_prefix("hls/r").await.unwrap(), 1);
    }
}
