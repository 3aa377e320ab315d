//! Server settings: `hookflow.yaml`, then `HOOKFLOW_<NAME>` environment
//! variables, then command-line flags, each overriding the one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// Everything `serve` (and the commands that read the store) needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub rules: PathBuf,
    /// `sqlite://path` or `postgres://…`.
    pub database: String,
    /// Runs executed at once; 0 makes the node receive only.
    pub workers: usize,
    /// Largest accepted body, unless a source says otherwise.
    pub max_body: u64,
    pub dedupe_window: Duration,
    pub retention: Duration,
    pub shutdown_grace: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Required as a bearer token for `/api`, `/ui` and `/metrics` when
    /// set; then they are served on `listen` too (SPEC §8).
    pub admin_token: Option<String>,
    /// The admin surface's own listener (`None`: none). Loopback only unless
    /// an `admin_token` is set.
    pub admin_listen: Option<SocketAddr>,
    /// The URL senders and operators use to reach this server, when it is
    /// not a loopback name (its host is accepted on the admin listener).
    pub public_url: Option<String>,
    pub log_format: LogFormat,
    /// Use a polling watcher for the rules (NFS, some container mounts).
    pub poll: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rules: PathBuf::from("rules"),
            database: "sqlite://hookflow.db".to_string(),
            workers: 16,
            max_body: 1024 * 1024,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            retention: Duration::from_secs(30 * 24 * 3600),
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: Vec::new(),
            admin_token: None,
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            public_url: None,
            log_format: LogFormat::Text,
            poll: false,
        }
    }
}

/// A settings value as text, from whichever layer gave it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub listen: Option<String>,
    pub rules: Option<String>,
    pub database: Option<String>,
    pub workers: Option<String>,
    pub max_body: Option<String>,
    pub dedupe_window: Option<String>,
    pub retention: Option<String>,
    pub shutdown_grace: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub admin_token: Option<String>,
    pub admin_token_file: Option<String>,
    pub admin_listen: Option<String>,
    pub public_url: Option<String>,
    pub log_format: Option<String>,
    pub poll: Option<String>,
}

/// A setting that could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid {name} {value:?} (from {origin}): {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        origin: &'static str,
        reason: String,
    },
}

impl Layer {
    /// `HOOKFLOW_<NAME>` variables.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Layer {
        let get = |name: &str| env(&format!("HOOKFLOW_{}", name.to_ascii_uppercase()));
        Layer {
            listen: get("listen"),
            rules: get("rules"),
            database: get("database"),
            workers: get("workers"),
            max_body: get("max_body"),
            dedupe_window: get("dedupe_window"),
            retention: get("retention"),
            shutdown_grace: get("shutdown_grace"),
            trusted_proxies: get("trusted_proxies")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
            admin_token: get("admin_token"),
            admin_token_file: get("admin_token_file"),
            admin_listen: get("admin_listen"),
            public_url: get("public_url"),
            log_format: get("log_format"),
            poll: get("poll"),
        }
    }

    /// A `hookflow.yaml` file. YAML scalars of any type are read as text.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let root = crate::rules::node::parse(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.without_snippet().to_string(),
        })?;
        let json = match root.to_json() {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => stringify_scalars(other),
        };
        serde_json::from_value(json).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

fn stringify_scalars(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(items) => Value::Array(items.into_iter().map(stringify_scalars).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, stringify_scalars(v)))
                .collect(),
        ),
        other => other,
    }
}

impl Settings {
    /// Defaults, overridden by each layer in order (file, env, flags).
    pub fn resolve(layers: &[(&'static str, Layer)]) -> Result<Settings, ConfigError> {
        let mut s = Settings::default();
        for (origin, layer) in layers {
            let invalid = |name: &'static str, value: &str, reason: String| ConfigError::Invalid {
                name,
                value: value.to_string(),
                origin,
                reason,
            };
            if let Some(v) = &layer.listen {
                s.listen = parse_listen(v).map_err(|reason| invalid("listen", v, reason))?;
            }
            if let Some(v) = &layer.admin_listen {
                s.admin_listen = match v.trim() {
                    "" | "off" | "none" => None,
                    v => {
                        Some(parse_listen(v).map_err(|reason| invalid("admin_listen", v, reason))?)
                    }
                };
            }
            if let Some(v) = &layer.public_url {
                if public_url_host(v).is_none() {
                    return Err(invalid(
                        "public_url",
                        v,
                        "expected an absolute http(s) URL such as https://hooks.example.com".into(),
                    ));
                }
                s.public_url = Some(v.trim_end_matches('/').to_string());
            }
            if let Some(v) = &layer.rules {
                s.rules = PathBuf::from(v);
            }
            if let Some(v) = &layer.database {
                if !(v.starts_with("sqlite:")
                    || v.starts_with("postgres://")
                    || v.starts_with("postgresql://"))
                {
                    return Err(invalid(
                        "database",
                        v,
                        "use sqlite://PATH or postgres://…".into(),
                    ));
                }
                s.database = v.clone();
            }
            if let Some(v) = &layer.workers {
                s.workers = v.parse().map_err(|_| {
                    invalid(
                        "workers",
                        v,
                        "expected a whole number (0: receive only, run nothing)".into(),
                    )
                })?;
            }
            if let Some(v) = &layer.max_body {
                s.max_body = crate::rules::decode::parse_byte_size(v).ok_or_else(|| {
                    invalid("max_body", v, "write e.g. 1048576, 512KiB or 1MiB".into())
                })?;
            }
            for (name, value, slot) in [
                ("dedupe_window", &layer.dedupe_window, &mut s.dedupe_window),
                ("retention", &layer.retention, &mut s.retention),
                (
                    "shutdown_grace",
                    &layer.shutdown_grace,
                    &mut s.shutdown_grace,
                ),
            ] {
                if let Some(v) = value {
                    *slot = humantime::parse_duration(v)
                        .map_err(|e| invalid(name, v, format!("{e}; write e.g. 30s, 5m, 7d")))?;
                }
            }
            if let Some(list) = &layer.trusted_proxies {
                s.trusted_proxies = list
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse::<IpNet>()
                            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                            .map_err(|_| {
                                invalid(
                                    "trusted_proxies",
                                    p,
                                    "expected an address or CIDR range".into(),
                                )
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(v) = &layer.admin_token {
                s.admin_token =
                    Some(check_token(v).map_err(|reason| invalid("admin_token", "***", reason))?);
            }
            if let Some(path) = &layer.admin_token_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid("admin_token_file", path, format!("cannot read it: {e}"))
                })?;
                let token = text.strip_suffix('\n').unwrap_or(&text);
                let token = token.strip_suffix('\r').unwrap_or(token);
                s.admin_token = Some(
                    check_token(token)
                        .map_err(|reason| invalid("admin_token_file", path, reason))?,
                );
            }
            if let Some(v) = &layer.log_format {
                s.log_format = match v.as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(invalid("log_format", v, "use text or json".into())),
                };
            }
            if let Some(v) = &layer.poll {
                s.poll =
                    parse_bool(v).ok_or_else(|| invalid("poll", v, "use true or false".into()))?;
            }
        }
        Ok(s)
    }

    /// The host of `public_url`, lower-cased, when one is set.
    pub fn public_host(&self) -> Option<String> {
        self.public_url.as_deref().and_then(public_url_host)
    }

    /// The SQLite file, when the database is SQLite.
    pub fn sqlite_path(&self) -> Option<&str> {
        self.database
            .strip_prefix("sqlite://")
            .or_else(|| self.database.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`, or `:8080` (every IPv4 interface).
fn parse_listen(v: &str) -> Result<SocketAddr, String> {
    let v = v.trim();
    let full = match v.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => v.to_string(),
    };
    full.parse()
        .map_err(|e| format!("{e}; write e.g. 127.0.0.1:8080, [::1]:8080 or :8080"))
}

/// An admin token must not be empty: an empty one would let every request
/// in (or, compared as given, none), and either is a mistake.
fn check_token(token: &str) -> Result<String, String> {
    if token.trim().is_empty() {
        return Err("the token is empty; set a long random value, or remove the setting".into());
    }
    Ok(token.to_string())
}

/// Booleans are `true` or `false` (YAML's spelling; `1`/`0`, `yes`/`no`
/// too); anything else is an error, not a silent `false`.
fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `https://Hooks.Example.com:8443/x` → `hooks.example.com`.
fn public_url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_which_beats_the_file_which_beats_defaults() {
        let file = Layer {
            listen: Some("0.0.0.0:9000".into()),
            workers: Some("4".into()),
            retention: Some("7d".into()),
            ..Layer::default()
        };
        let env = Layer::from_env(&|name| match name {
            "HOOKFLOW_WORKERS" => Some("8".into()),
            "HOOKFLOW_LISTEN" => Some("127.0.0.1:7000".into()),
            _ => None,
        });
        let flags = Layer {
            listen: Some("127.0.0.1:6000".into()),
            ..Layer::default()
        };
        let s = Settings::resolve(&[
            ("hookflow.yaml", file),
            ("environment", env),
            ("flags", flags),
        ])
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:6000");
        assert_eq!(s.workers, 8);
        assert_eq!(s.retention, Duration::from_secs(7 * 86400));
        assert_eq!(s.max_body, 1024 * 1024, "default kept");
    }

    #[test]
    fn admin_settings_are_checked() {
        let layer = |f: fn(&mut Layer)| {
            let mut l = Layer::default();
            f(&mut l);
            Settings::resolve(&[("flags", l)])
        };
        assert!(
            layer(|l| l.admin_token = Some(" ".into())).is_err(),
            "an empty token is an error"
        );
        let s = layer(|l| l.admin_listen = Some("off".into())).unwrap();
        assert_eq!(s.admin_listen, None);
        let s = layer(|l| l.listen = Some(":8181".into())).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:8181");
        let s =
            layer(|l| l.public_url = Some("https://Hooks.Example.com:8443/base/".into())).unwrap();
        assert_eq!(s.public_host().as_deref(), Some("hooks.example.com"));
        assert!(layer(|l| l.public_url = Some("hooks.example.com".into())).is_err());
        assert!(
            layer(|l| l.poll = Some("ture".into())).is_err(),
            "a typo is not false"
        );
        let e = layer(|l| l.admin_token = Some("".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("admin_token") && !e.contains("\"\""), "{e}");
    }

    #[test]
    fn the_admin_token_can_come_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret-token\n").unwrap();
        let l = Layer {
            admin_token_file: Some(path.display().to_string()),
            ..Layer::default()
        };
        let s = Settings::resolve(&[("file", l)]).unwrap();
        assert_eq!(s.admin_token.as_deref(), Some("s3cret-token"));
    }

    #[test]
    fn zero_workers_is_a_receive_only_node() {
        let flags = Layer {
            workers: Some("0".into()),
            ..Layer::default()
        };
        let s = Settings::resolve(&[("flags", flags)]).unwrap();
        assert_eq!(s.workers, 0);
    }

    #[test]
    fn invalid_values_name_the_setting_and_where_it_came_from() {
        let env = Layer {
            workers: Some("zero".into()),
            ..Layer::default()
        };
        let e = Settings::resolve(&[("environment", env)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("workers") && e.contains("environment"), "{e}");
    }

    #[test]
    fn the_settings_file_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookflow.yaml");
        std::fs::write(&path, "listen: 127.0.0.1:1234\nworkres: 4\n").unwrap();
        assert!(
            Layer::from_file(&path)
                .unwrap_err()
                .to_string()
                .contains("workres")
        );
        std::fs::write(
            &path,
            "listen: 127.0.0.1:1234\nworkers: 4\nmax_body: 2MiB\n",
        )
        .unwrap();
        let s = Settings::resolve(&[("file", Layer::from_file(&path).unwrap())]).unwrap();
        assert_eq!((s.workers, s.max_body), (4, 2 * 1024 * 1024));
    }
}
