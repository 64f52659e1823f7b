//! This node's name, the same at every start: it is written on the broadcast sessions the node
//! takes in, so that after a crash the node finishes its own interrupted sessions and never
//! another node's on a shared database. It is also the node's name in the cluster.
//!
//! `cluster.node_id` when config sets it; else a name made at first start (host name and a
//! random suffix) and kept in `<data_dir>/node-id`. A node whose data folder is new (a fresh
//! container) is a new node: give such deployments a stable `cluster.node_id`.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// The kept name could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("node identity file {path}: {source}")]
pub struct NodeIdentityError {
    pub path: PathBuf,
    source: std::io::Error,
}

/// The file that keeps a generated name.
pub fn identity_file(data_dir: &Path) -> PathBuf {
    data_dir.join("node-id")
}

/// This node's name: config's, else the kept one, else a new one (kept).
pub fn resolve(config: &Config) -> Result<String, NodeIdentityError> {
    if !config.cluster.node_id.is_empty() {
        return Ok(config.cluster.node_id.clone());
    }
    let path = identity_file(&config.data_dir);
    let err = |source| NodeIdentityError {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(kept) if valid_name(kept.trim()) => return Ok(kept.trim().to_string()),
        Ok(_) => {
            tracing::warn!(path = %path.display(), "node identity file unreadable; making a new name")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let name = generated_name();
    std::fs::write(&path, format!("{name}\n")).map_err(err)?;
    tracing::info!(node = %name, path = %path.display(), "named this node at first start and kept the name");
    Ok(name)
}

/// Host name and a random suffix: readable in logs, unique among nodes on one host.
pub fn generated_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| valid_name(h))
        .unwrap_or_else(|| "node".to_string());
    format!(
        "{host}-{}",
        crate::secrets::random_secret(6).to_ascii_lowercase()
    )
}

/// A name fit for logs, Redis keys and the database: 1-128 visible ASCII characters.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_name_is_kept_and_config_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::testutil::test_config(dir.path());
        config.cluster.node_id.clear();
        let first = resolve(&config).unwrap();
        assert!(valid_name(&first), "{first}");
        assert_eq!(resolve(&config).unwrap(), first);
        std::fs::write(identity_file(dir.path()), "\n").unwrap();
        let remade = resolve(&config).unwrap();
        assert_ne!(remade, first);
        config.cluster.node_id = "edge-1".into();
        assert_eq!(resolve(&config).unwrap(), "edge-1");
    }
}
