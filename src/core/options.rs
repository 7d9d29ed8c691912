//! Client options (`crvm_set_option`): string keys and values, validated here once.

use crvm_proto::error::{code, CRVIDEOSDK_MEETPARAM_ERR};
use crvm_proto::msg::limits::PATH_MAX;
use crvm_proto::Code;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How events reach the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchMode {
    /// A dispatcher thread of the client calls the callbacks (default).
    Thread,
    /// Callbacks run inside `poll` on the app's thread.
    Manual,
}

/// Every option with its current value.
#[derive(Debug, Clone)]
pub struct Options {
    pub download_dir: PathBuf,
    pub dispatch: DispatchMode,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Largest buffer this client sends or accepts (the server's own limit applies too).
    pub max_buffer_bytes: u64,
    /// Data accepted and not yet acknowledged end to end beyond which `send_cmd` and
    /// `send_buffer` are refused with 1000 (docs/API.md §3.5).
    pub max_pending_bytes: u64,
    /// Speak TLS to the server.
    pub tls: bool,
    /// Resume the session after a lost connection (docs/API.md §3.6); off: `line_off(207)` at once.
    pub reconnect: bool,
    /// CA certificates (PEM) that the server's certificate must chain to; the system's when
    /// unset.
    pub tls_ca_file: Option<PathBuf>,
    /// Where the library appends one line per event (names, codes and IDs only: never a
    /// secret, token, cookie or payload).
    pub log_file: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            download_dir: default_download_dir(&|k| std::env::var_os(k)),
            dispatch: DispatchMode::Thread,
            connect_timeout: Duration::from_millis(10_000),
            request_timeout: Duration::from_millis(30_000),
            max_buffer_bytes: 100 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            tls: false,
            reconnect: true,
            tls_ca_file: None,
            log_file: None,
        }
    }
}

/// The user's own download directory, the default of `download_dir` (never a shared,
/// world-writable one such as /tmp): `$XDG_DOWNLOAD_DIR`, else the `XDG_DOWNLOAD_DIR` line of
/// `$XDG_CONFIG_HOME/user-dirs.dirs` (`~/.config/user-dirs.dirs`), else `$HOME`, else the
/// current directory. Each candidate must be an absolute path to an existing directory; `env`
/// reads an environment variable (a parameter so tests need not change the process's own).
pub fn default_download_dir(env: &dyn Fn(&str) -> Option<OsString>) -> PathBuf {
    let existing = |p: PathBuf| (p.is_absolute() && p.is_dir()).then_some(p);
    let home = env("HOME").map(PathBuf::from).and_then(existing);
    let from_env = env("XDG_DOWNLOAD_DIR").map(PathBuf::from);
    let config = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home.as_ref().map(|h| h.join(".config")));
    let from_file = config.and_then(|c| user_dirs_download(&c.join("user-dirs.dirs"), &home));
    from_env
        .and_then(existing)
        .or_else(|| from_file.and_then(existing))
        .or(home)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `XDG_DOWNLOAD_DIR="$HOME/Downloads"` line of an xdg-user-dirs file, with `$HOME`
/// expanded (the only variable that format allows); None without the file, the line or a home
/// for a `$HOME/` path.
fn user_dirs_download(file: &Path, home: &Option<PathBuf>) -> Option<PathBuf> {
    let text = std::fs::read_to_string(file).ok()?;
    let value = text.lines().find_map(|l| {
        let v = l.trim().strip_prefix("XDG_DOWNLOAD_DIR=")?;
        Some(v.trim().trim_matches('"').to_owned())
    })?;
    match value.strip_prefix("$HOME") {
        Some(rest) => Some(home.as_ref()?.join(rest.trim_start_matches('/'))),
        None => Some(PathBuf::from(value)),
    }
}

fn bad() -> Code {
    code(CRVIDEOSDK_MEETPARAM_ERR)
}

fn millis(value: &str, max: u64) -> Result<Duration, Code> {
    match value.parse::<u64>() {
        Ok(ms) if (1..=max).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err(bad()),
    }
}

fn positive(value: &str) -> Result<u64, Code> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(bad()),
    }
}

fn on_off(value: &str) -> Result<bool, Code> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(bad()),
    }
}

impl Options {
    /// Applies one option; unknown key or bad value → 5 and nothing changes.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Code> {
        match key {
            "download_dir" => {
                let dir = PathBuf::from(value);
                if value.is_empty() || value.len() > PATH_MAX || !dir.is_dir() {
                    return Err(bad());
                }
                self.download_dir = dir;
            }
            "dispatch" => {
                self.dispatch = match value {
                    "thread" => DispatchMode::Thread,
                    "manual" => DispatchMode::Manual,
                    _ => return Err(bad()),
                }
            }
            "connect_timeout_ms" => self.connect_timeout = millis(value, 600_000)?,
            "request_timeout_ms" => self.request_timeout = millis(value, 3_600_000)?,
            "max_buffer_bytes" => self.max_buffer_bytes = positive(value)?,
            "max_pending_bytes" => self.max_pending_bytes = positive(value)?,
            "tls" => self.tls = on_off(value)?,
            "reconnect" => self.reconnect = on_off(value)?,
            "log_file" => {
                // Opened now so a path that cannot be written is a refused option.
                let path = PathBuf::from(value);
                let ok = !value.is_empty()
                    && value.len() <= PATH_MAX
                    && std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .is_ok();
                if !ok {
                    return Err(bad());
                }
                self.log_file = Some(path);
            }
            "tls_ca_file" => {
                // Checked now, so that a bad file is a refused option, not a failed login.
                let path = PathBuf::from(value);
                if value.len() > PATH_MAX || super::transport::tls_config(Some(&path)).is_err() {
                    return Err(bad());
                }
                self.tls_ca_file = Some(path);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_and_bad_values() {
        let mut o = Options::default();
        assert!(o.set("dispatch", "manual").is_ok());
        assert_eq!(o.dispatch, DispatchMode::Manual);
        assert!(o.set("dispatch", "fiber").is_err());
        assert!(o.set("connect_timeout_ms", "250").is_ok());
        assert_eq!(o.connect_timeout, Duration::from_millis(250));
        for bad in ["", "0", "-1", "1e3", "99999999999999999999"] {
            assert!(o.set("request_timeout_ms", bad).is_err(), "{bad}");
        }
        assert!(o.set("download_dir", "/definitely/not/here").is_err());
        assert!(o
            .set("download_dir", &std::env::temp_dir().to_string_lossy())
            .is_ok());
        assert!(o.set("tls", "off").is_ok());
        assert!(o.set("tls", "on").is_ok());
        assert!(o.set("tls", "maybe").is_err());
        assert!(o.set("tls_ca_file", "/definitely/not/here.pem").is_err());
        assert!(
            o.set("tls_ca_file", "/etc/hostname").is_err(),
            "not a certificate"
        );
        assert!(o.set("no_such_key", "1").is_err());
        assert!(o.set("reconnect", "yes").is_err());
        assert!(o.reconnect);
        assert!(o.set("reconnect", "off").is_ok());
        assert!(!o.reconnect);
        assert!(o.set("max_pending_bytes", "0").is_err());
        assert!(o.set("max_pending_bytes", "4096").is_ok());
        assert_eq!(o.max_pending_bytes, 4096);
        assert!(o.set("log_file", "/definitely/not/here/x.log").is_err());
        assert_eq!(o.connect_timeout, Duration::from_millis(250));
    }

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("crvm-opts-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn dir_with(vars: &[(&str, &Path)]) -> PathBuf {
        default_download_dir(&|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.as_os_str().to_owned())
        })
    }

    #[test]
    fn download_dir_defaults_to_the_users_own() {
        let s = Scratch::new("dl");
        let home = s.0.join("home");
        let downloads = home.join("Télé chargements");
        std::fs::create_dir_all(home.join(".config")).unwrap();
        // HOME only: the home directory.
        assert_eq!(dir_with(&[("HOME", &home)]), home);
        // user-dirs.dirs names a directory that does not exist: still the home directory.
        std::fs::write(
            home.join(".config/user-dirs.dirs"),
            "# comment\nXDG_DESKTOP_DIR=\"$HOME/Desktop\"\nXDG_DOWNLOAD_DIR=\"$HOME/Télé chargements\"\n",
        )
        .unwrap();
        assert_eq!(dir_with(&[("HOME", &home)]), home);
        // Once it exists, the XDG download directory.
        std::fs::create_dir(&downloads).unwrap();
        assert_eq!(dir_with(&[("HOME", &home)]), downloads);
        // XDG_CONFIG_HOME is where user-dirs.dirs is looked for.
        let cfg = s.0.join("cfg");
        std::fs::create_dir(&cfg).unwrap();
        assert_eq!(
            dir_with(&[("HOME", &home), ("XDG_CONFIG_HOME", &cfg)]),
            home
        );
        // $XDG_DOWNLOAD_DIR comes first; a relative one is ignored.
        let own = s.0.join("own");
        std::fs::create_dir(&own).unwrap();
        assert_eq!(
            dir_with(&[("HOME", &home), ("XDG_DOWNLOAD_DIR", &own)]),
            own
        );
        let relative = Path::new("own");
        assert_eq!(
            dir_with(&[("HOME", &home), ("XDG_DOWNLOAD_DIR", relative)]),
            downloads
        );
        // No usable HOME: the current directory, never the shared temporary one.
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(dir_with(&[]), cwd);
        assert_eq!(dir_with(&[("HOME", &s.0.join("missing"))]), cwd);
        assert_ne!(dir_with(&[]), std::env::temp_dir());
    }
}
