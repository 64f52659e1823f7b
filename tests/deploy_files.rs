//! deploy/ cannot run here (no container engine or cluster), so these tests keep its files
//! valid and in step with the code: compose and Kubernetes YAML parse and say what they
//! should, every BARRAGE_* variable and the ConfigMap's TOML load as barrage config, the
//! Grafana dashboard uses only metric names the code exports, and nginx accepts nginx.conf
//! (`nginx -t`).

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use barrage::config::Config;
use serde::Deserialize;
use serde_yaml::Value;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    let mut v: Value = serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    v.apply_merge()
        .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
    v
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

/// Loads barrage config from these environment variables only (as a container would).
fn config_from_env(env: &[(String, String)], what: &str) -> Config {
    Config::load_with_env(None, env).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?message}` with `vars` set; an unset
/// `:?` variable is compose's refusal to start, returned as the error.
fn interpolate(text: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let expr = &rest[start + 2..end];
        let name_end = expr.find([':', '-', '?']).unwrap_or(expr.len());
        let (name, op) = expr.split_at(name_end);
        let value = vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        match (value, op) {
            (Some(v), _) => out.push_str(v),
            (None, op) if op.starts_with(":?") || op.starts_with('?') => {
                return Err(format!("{name}: {}", op.trim_start_matches([':', '?'])))
            }
            (None, op) => out.push_str(op.trim_start_matches([':', '-'])),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The secrets compose needs from the environment, set to strong values.
const COMPOSE_SECRETS: &[(&str, &str)] = &[
    ("BARRAGE_TOKEN_SECRET", "Qm7tX2vL9pKc4RwZ8nHd3JfA"),
    ("BARRAGE_ADMIN_KEY", "Vb5yN1sE6uGq0TkP7cMx2Lrj"),
    ("MINIO_ROOT_USER", "barrage-ops"),
    ("MINIO_ROOT_PASSWORD", "Hw3Zp8Lq5Nv2Xt9Kc6Rm"),
    ("POSTGRES_PASSWORD", "Jd4Fs7Ga1Hk9Lq3Zx6Cv"),
];

#[test]
fn compose_ships_no_secret_and_refuses_to_start_without_one() {
    let text = read("deploy/docker-compose.yml");
    // Every substitution has no default: unset, compose stops with the message.
    for (i, _) in text.match_indices("${") {
        let expr: String = text[i..].chars().take_while(|c| *c != '}').collect();
        assert!(expr.contains(":?"), "{expr}: no default, fail when unset");
    }
    for (name, _) in COMPOSE_SECRETS {
        let without: Vec<(&str, &str)> = COMPOSE_SECRETS
            .iter()
            .copied()
            .filter(|(n, _)| n != name)
            .collect();
        let err = interpolate(&text, &without).expect_err(name);
        assert!(err.starts_with(name), "{err}");
    }
    // The MinIO console is not published (it would take the root login).
    let doc: Value = serde_yaml::from_str(&interpolate(&text, COMPOSE_SECRETS).unwrap()).unwrap();
    let minio = &doc["services"]["minio"];
    assert!(minio["ports"].is_null(), "minio publishes no port");
    assert!(
        !s(&minio["command"][0], "minio command").contains("console")
            && !serde_yaml::to_string(&minio["command"])
                .unwrap()
                .contains("console-address"),
        "no console"
    );
    // With a placeholder set from the environment, barrage refuses to start, naming the key.
    let node_env = |token_secret: &str| -> Vec<(String, String)> {
        let mut vars = COMPOSE_SECRETS.to_vec();
        vars[0] = ("BARRAGE_TOKEN_SECRET", token_secret);
        let doc: Value = serde_yaml::from_str(&interpolate(&text, &vars).unwrap()).unwrap();
        let mut doc = doc;
        doc.apply_merge().unwrap();
        env_of(&doc["services"]["node1"])
    };
    let err = Config::load_with_env(None, &node_env("change-me-token-secret"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.token_secret"), "{err}");
    config_from_env(&node_env("Qm7tX2vL9pKc4RwZ8nHd3JfA"), "strong secrets");
}

/// A compose service's environment as (name, value) pairs.
fn env_of(svc: &Value) -> Vec<(String, String)> {
    svc["environment"]
        .as_mapping()
        .expect("environment map")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(t) => t.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            (s(k, "env name").to_string(), value)
        })
        .collect()
}

#[test]
fn compose_runs_several_nodes_with_redis_postgres_minio_and_a_cdn() {
    let text = interpolate(&read("deploy/docker-compose.yml"), COMPOSE_SECRETS).expect("secrets");
    let mut doc: Value = serde_yaml::from_str(&text).expect("compose YAML");
    doc.apply_merge().expect("merge keys");
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().map(|k| s(k, "service name")).collect();
    for needed in ["redis", "postgres", "minio", "minio-init", "cdn"] {
        assert!(names.contains(needed), "compose has {needed}: {names:?}");
    }
    let nodes: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.starts_with("node"))
        .collect();
    assert!(nodes.len() >= 2, "several barrage nodes: {nodes:?}");

    let mut host_ports = HashSet::new();
    let mut node_ids = HashSet::new();
    for (name, svc) in services {
        let name = s(name, "service");
        for port in svc["ports"].as_sequence().into_iter().flatten() {
            let host = s(port, "port")
                .split(':')
                .next()
                .unwrap_or_default()
                .to_string();
            assert!(
                host_ports.insert(host.clone()),
                "{name}: host port {host} used twice"
            );
        }
        for dep in svc["depends_on"]
            .as_mapping()
            .map(|m| m.keys().collect::<Vec<_>>())
            .or_else(|| svc["depends_on"].as_sequence().map(|s| s.iter().collect()))
            .unwrap_or_default()
        {
            assert!(
                names.contains(s(dep, "dependency")),
                "{name} depends on unknown {dep:?}"
            );
        }
    }
    for node in &nodes {
        let svc = &doc["services"][*node];
        assert_eq!(
            s(&svc["build"]["dockerfile"], "dockerfile"),
            "deploy/Dockerfile"
        );
        assert_eq!(s(&svc["build"]["context"], "context"), "..");
        let config = config_from_env(&env_of(svc), node);
        assert_eq!(config.cluster.redis_url, "redis://redis:6379/0", "{node}");
        assert!(
            config.db_url().starts_with("postgres://") && config.db_url().contains("@postgres:")
        );
        assert!(
            config.storage.url.starts_with("s3://") && config.storage.endpoint.contains("minio")
        );
        assert!(!config.cdn.bases.is_empty(), "{node}: CDN bases");
        assert!(
            config.cluster.advertise_url.starts_with("http://"),
            "{node}"
        );
        assert!(
            node_ids.insert(config.cluster.node_id.clone()),
            "{node}: node ids differ"
        );
    }
    let cdn = &doc["services"]["cdn"];
    assert!(s(&cdn["image"], "cdn image").starts_with("nginx"));
    let mounts: Vec<&str> = cdn["volumes"]
        .as_sequence()
        .expect("cdn volumes")
        .iter()
        .map(|v| s(v, "volume"))
        .collect();
    assert!(
        mounts.iter().any(|m| m.starts_with("./nginx.conf:")),
        "{mounts:?}"
    );
}

#[test]
fn kubernetes_manifests_hold_a_deployment_service_configmap_and_hpa_that_fit_together() {
    let kustomization = yaml("deploy/k8s/kustomization.yaml");
    let mut docs = Vec::new();
    for file in kustomization["resources"].as_sequence().expect("resources") {
        let file = format!("deploy/k8s/{}", s(file, "resource"));
        for doc in serde_yaml::Deserializer::from_str(&read(&file)) {
            docs.push(Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")));
        }
    }
    let of_kind = |kind: &str| -> &Value {
        docs.iter()
            .find(|d| d["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("a {kind} manifest"))
    };
    let config_map = of_kind("ConfigMap");
    let deployment = of_kind("Deployment");
    let service = of_kind("Service");
    let hpa = of_kind("HorizontalPodAutoscaler");
    // No Secret with values in the repository: it is generated from secrets.env, which is
    // ignored by git and absent here (so `kubectl apply -k` fails until the operator makes it).
    assert!(
        docs.iter().all(|d| d["kind"].as_str() != Some("Secret")),
        "no Secret manifest with fixed values"
    );
    let generator = kustomization["secretGenerator"]
        .as_sequence()
        .expect("secretGenerator")
        .iter()
        .find(|g| g["name"].as_str() == Some("barrage-secrets"))
        .expect("barrage-secrets is generated");
    let env_file = s(&generator["envs"][0], "secret env file");
    assert!(
        !repo(&format!("deploy/k8s/{env_file}")).exists(),
        "{env_file} is never in the repository"
    );
    assert!(
        read(".gitignore").contains(&format!("/deploy/k8s/{env_file}")),
        "{env_file} is ignored by git"
    );
    let example = read(&format!("deploy/k8s/{env_file}.example"));
    let example_keys: HashSet<&str> = example
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('=').next())
        .collect();

    let toml = s(&config_map["data"]["barrage.toml"], "barrage.toml");
    let config = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("barrage.toml: {e}"));
    assert!(config.cluster.redis_url.starts_with("redis://"));
    assert!(config.db_url().starts_with("postgres://"));

    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let ports: Vec<(String, u64)> = container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                s(&p["name"], "port name").to_string(),
                p["containerPort"].as_u64().expect("port"),
            )
        })
        .collect();
    assert!(
        ports.contains(&("http".into(), u64::from(config.http.listen.port()))),
        "{ports:?}"
    );
    assert!(
        ports.contains(&("rtmp".into(), u64::from(config.rtmp.listen.port()))),
        "{ports:?}"
    );
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| s(a, "arg"))
        .collect();
    assert!(args.contains(&"/etc/barrage/barrage.toml"), "{args:?}");
    let mount = container["volumeMounts"]
        .as_sequence()
        .expect("mounts")
        .iter()
        .find(|m| m["mountPath"].as_str() == Some("/etc/barrage"))
        .expect("the config mount");
    let volume = pod["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the config volume");
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    // Environment overrides are real settings (values from the cluster stand in as text).
    let env: Vec<(String, String)> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .map(|e| {
            let value = e["value"]
                .as_str()
                .unwrap_or("from-the-cluster")
                .replace("$(POD_IP)", "10.0.0.7");
            (s(&e["name"], "env name").to_string(), value)
        })
        .collect();
    for e in container["env"].as_sequence().expect("env") {
        let secret = &e["valueFrom"]["secretKeyRef"];
        if !secret.is_null() {
            assert_eq!(secret["name"], generator["name"], "{e:?}");
            assert!(example_keys.contains(s(&secret["key"], "key")), "{e:?}");
        }
    }
    let config = config_from_env(&env, "deployment env");
    assert!(
        config.cluster.advertise_url.starts_with("http://10.0.0.7"),
        "{}",
        config.cluster.advertise_url
    );

    let labels = &pod["metadata"]["labels"];
    assert_eq!(&deployment["spec"]["selector"]["matchLabels"], labels);
    assert_eq!(&service["spec"]["selector"], labels);
    for p in service["spec"]["ports"]
        .as_sequence()
        .expect("service ports")
    {
        let target = s(&p["targetPort"], "targetPort");
        assert!(
            ports.iter().any(|(name, _)| name == target),
            "service port targets {target}"
        );
    }
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(hpa["spec"]["minReplicas"].as_u64() >= Some(2));
}

/// Every `barrage_*` metric name the code registers (string literals under src/).
fn metric_names_in_code() -> HashSet<String> {
    fn walk(dir: &Path, out: &mut HashSet<String>) {
        for entry in std::fs::read_dir(dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for (i, _) in text.match_indices("\"barrage_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    out.insert(name);
                }
            }
        }
    }
    let mut out = HashSet::new();
    walk(&repo("src"), &mut out);
    out
}

#[test]
fn the_grafana_dashboard_uses_only_metrics_that_exist() {
    let dash: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/barrage.json")).expect("dashboard JSON");
    let known = metric_names_in_code();
    assert!(
        known.contains("barrage_chat_online"),
        "metric scan works: {known:?}"
    );
    let panels = dash["panels"].as_array().expect("panels");
    let titles: Vec<String> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap_or_default().to_lowercase())
        .collect();
    for topic in [
        "online by room",
        "uplink",
        "broadcast",
        "egress",
        "cdn writes",
        "flow-control",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "a panel on {topic}: {titles:?}"
        );
    }
    let mut ids = HashSet::new();
    for p in panels {
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "panel ids are unique"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            for (i, _) in expr.match_indices("barrage_") {
                let name: String = expr[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                assert!(
                    known.contains(&name),
                    "panel {:?} uses {name}, which the code does not export",
                    p["title"]
                );
            }
        }
    }
}

#[test]
fn nginx_accepts_the_cdn_config_and_it_caches_hls_and_danmaku() {
    let conf = read("deploy/nginx.conf");
    for location in ["location /hls/", "location /danmaku/"] {
        let block = conf
            .split(location)
            .nth(1)
            .unwrap_or_else(|| panic!("{location}"));
        let block = block.split("location ").next().unwrap_or_default();
        assert!(
            block.contains("proxy_cache barrage;"),
            "{location} is cached"
        );
    }
    assert!(
        !conf.contains("proxy_ignore_headers"),
        "Cache-Control from the origin is honoured"
    );
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or_else(|| panic!("nginx is needed for this test (apt-get install -y nginx)"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
    // The cache folder is the one thing that points at the machine: test it in a temp dir.
    let cache = dir.path().join("cache");
    let conf = conf.replace("/var/cache/nginx/barrage", &cache.display().to_string());
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, conf).expect("write conf");
    let out = std::process::Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&file)
        .arg("-g")
        .arg(format!(
            "pid {0}/nginx.pid; error_log {0}/logs/error.log;",
            dir.path().display()
        ))
        .output()
        .expect("run nginx -t");
    assert!(
        out.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_builds_with_rust_and_runs_small_and_unprivileged() {
    let text = read("deploy/Dockerfile");
    let stages: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(stages[0].contains("rust:"), "{stages:?}");
    assert!(
        stages.last().is_some_and(|s| s.contains("slim")),
        "{stages:?}"
    );
    let runtime = text.rsplit("\nFROM ").next().unwrap_or_default();
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    assert!(
        !user.starts_with("root") && !user.starts_with('0'),
        "runs as {user}"
    );
    assert!(
        runtime.contains("COPY --from=build"),
        "only the binary is copied over"
    );
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/barrage\"]"));
    assert!(repo("deploy/Dockerfile.dockerignore").is_file());
}
