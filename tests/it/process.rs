//! The real `gongkai run` as a child process, and an HTTP client for its listeners: what the
//! daemon, alerts and kiosk tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

/// `gongkai run DIR --lang en` with `env` set, its log (level info) in `DIR/daemon.log`;
/// killed if the test fails before it stops it.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = dir.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .args(["run", "--lang", "en"])
            .arg(dir)
            .envs(env.iter().copied())
            .env("GONGKAI_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("gongkai run starts");
        Daemon { child, log }
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a power cut or the OOM killer would stop it, and wait for it.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status within `limit`.
    pub async fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not stop within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client with a timeout, so that a daemon that hangs fails the test instead of holding it.
pub fn client() -> reqwest::Client {
    gongkai::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
}

/// `GET base+path` as JSON.
pub async fn get_json(base: &str, path: &str) -> serde_json::Value {
    client()
        .get(format!("{base}{path}"))
        .send()
        .await
        .expect("the admin API answers")
        .json()
        .await
        .expect("JSON")
}
