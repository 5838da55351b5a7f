//! Gateway credentials in memory: a type that never prints, read from where the model says.
//!
//! Owns reading a secret (an environment variable or a file) and refusing a file others can
//! read. It does not decide which gateway needs which secret (the model does) and never logs.

use std::fmt;
use std::path::Path;

use crate::config::model::SecretSource;

/// A password or key. `Debug` and `Display` show `***`; only [`Secret::expose`] gives it out,
/// so a secret cannot reach a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for signing and for the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a secret could not be read. Never carries the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set or empty")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("secret file {path} is readable by group or others (mode {mode:o}); chmod 600 it")]
    TooOpen { path: String, mode: u32 },
    #[error("secret file {0} is empty")]
    Empty(String),
}

impl SecretError {
    /// The catalogue key of the message, for operator-facing output.
    pub fn key(&self) -> &'static str {
        match self {
            SecretError::EnvMissing(_) => "sms.secret.env_missing",
            SecretError::File { .. } => "sms.secret.file",
            SecretError::TooOpen { .. } => "sms.secret.too_open",
            SecretError::Empty(_) => "sms.secret.empty",
        }
    }
}

/// Reads the secret `source` names. A relative file is read from `site_dir`. The value is
/// trimmed of surrounding whitespace (a file usually ends with a newline).
pub fn load(
    source: &SecretSource,
    site_dir: &Path,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secret, SecretError> {
    match source {
        SecretSource::Env(name) => match env(name) {
            Some(value) if !value.trim().is_empty() => Ok(Secret(value.trim().to_owned())),
            _ => Err(SecretError::EnvMissing(name.clone())),
        },
        SecretSource::File(path) => {
            let full = site_dir.join(path);
            check_mode(&full, path)?;
            let text = std::fs::read_to_string(&full).map_err(|source| SecretError::File {
                path: path.clone(),
                source,
            })?;
            let value = text.trim();
            if value.is_empty() {
                return Err(SecretError::Empty(path.clone()));
            }
            Ok(Secret(value.to_owned()))
        }
    }
}

/// Refuses a file whose mode lets the group or others read it: the check is on the mode bits,
/// because root ignores them when reading and a test running as root would see nothing.
#[cfg(unix)]
fn check_mode(full: &Path, shown: &str) -> Result<(), SecretError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(full).map_err(|source| SecretError::File {
        path: shown.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen {
            path: shown.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_full: &Path, _shown: &str) -> Result<(), SecretError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn env_secret_is_read_and_an_empty_one_refused() {
        let source = SecretSource::Env("K".into());
        let ok = load(&source, Path::new("."), |_| Some(" abc\n".into()));
        assert_eq!(
            ok.map(|s| s.expose().to_owned()).ok().as_deref(),
            Some("abc")
        );
        let missing = load(&source, Path::new("."), |_| None);
        assert!(matches!(missing, Err(SecretError::EnvMissing(name)) if name == "K"));
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = SecretSource::File("key".into());
        let err = load(&source, dir.path(), |_| None).unwrap_err();
        assert!(
            matches!(err, SecretError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("s3cret"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ok = load(&source, dir.path(), |_| None).unwrap();
        assert_eq!(ok.expose(), "s3cret");
    }
}
