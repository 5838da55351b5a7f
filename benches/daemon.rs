//! The daemon as operators run it, measured from outside: `gongkai run` (this build) on the
//! example county and on generated sites of 200 simulated displays.
//!
//! Prints, per scenario: resident memory (VmRSS, and VmHWM for the peak), CPU while running
//! (user + system time over a window, as a share of one core), and where it applies the time
//! from a slot boundary to the picture handed to the link (p50/p99, from the daemon's own
//! `/api/status`) and from a playlist edit on disk to every affected display showing it.
//!
//! `cargo bench --bench daemon`. Not a criterion benchmark: what is measured is a process over
//! seconds, not a function over microseconds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DISPLAYS: usize = 200;
/// How long each window of CPU measurement lasts.
const WINDOW: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18640)
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// The example county with its admin listener on `port`.
fn county(dir: &Path, port: u16) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let site = std::fs::read_to_string(root.join("gongkai.yaml")).expect("the example site");
    write(
        dir,
        "gongkai.yaml",
        &site
            .replace(
                "listen: 127.0.0.1:8640",
                &format!("listen: 127.0.0.1:{port}"),
            )
            .replace(
                "listen: 127.0.0.1:8641",
                &format!("listen: 127.0.0.1:{}", free_port()),
            ),
    );
    for sub in ["hw-profiles", "playlists", "fonts"] {
        for entry in std::fs::read_dir(root.join(sub)).expect("folder").flatten() {
            let target = dir.join(sub).join(entry.file_name());
            let _ = std::fs::create_dir_all(dir.join(sub));
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// 200 simulated displays of two profiles; one always-on playlist of `items` page items, each
/// shown for `dwell`.
fn generated(dir: &Path, port: u16, items: usize, dwell: &str) {
    let mut site = format!(
        "site: 生成测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{port} }}\ndisplays:\n"
    );
    for d in 0..DISPLAYS {
        let profile = ["strip", "square"][d % 2];
        site.push_str(&format!(
            "  - id: d{d}\n    profile: {profile}\n    link: {{ simulated: true }}\n    groups: [all]\n"
        ));
    }
    write(dir, "gongkai.yaml", &site);
    write(
        dir,
        "hw-profiles/strip.yaml",
        "width: 128\nheight: 16\npixel: mono\nfont: wqy16\nprotocol: gongkai\n",
    );
    write(
        dir,
        "hw-profiles/square.yaml",
        "width: 192\nheight: 64\npixel: bicolor\nfont: wqy16\nprotocol: gongkai\n",
    );
    write(dir, "playlists/all.yaml", &playlist(items, dwell, "公示"));
}

fn playlist(items: usize, dwell: &str, word: &str) -> String {
    let mut text =
        format!("id: all\ntargets: [all]\nshow: {{ mode: page, dwell: {dwell} }}\nitems:\n");
    for i in 0..items {
        text.push_str(&format!(
            "  - id: i{i}\n    title: 第{i}号{word}\n    category: 政府采购\n"
        ));
    }
    text
}

struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    fn start(dir: &Path, port: u16) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_gongkai"))
            .arg("run")
            .arg(dir)
            .env("GONGKAI_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gongkai run starts");
        Daemon {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn proc_status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        text.lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// User + system CPU time so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let rest = text.rsplit(')').next().unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let at = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        at(11) + at(12)
    }

    /// CPU used over `window`, as a percentage of one core.
    fn cpu_percent(&self, window: Duration) -> f64 {
        let ticks_per_second = 100.0;
        let before = self.cpu_ticks();
        std::thread::sleep(window);
        let used = self.cpu_ticks() - before;
        used as f64 / ticks_per_second / window.as_secs_f64() * 100.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

async fn json(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Waits until every display shows something.
async fn settled(client: &reqwest::Client, daemon: &Daemon, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(list) = json(client, &format!("{}/api/displays", daemon.base)).await
            && let Some(list) = list.as_array()
            && list.len() == count
            && list.iter().all(|d| !d["current"].is_null())
        {
            return;
        }
        assert!(Instant::now() < deadline, "the daemon did not settle");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report_memory(name: &str, daemon: &Daemon) {
    println!(
        "{name}: resident {:.1} MB (peak {:.1} MB)",
        daemon.proc_status("VmRSS:") as f64 / 1024.0,
        daemon.proc_status("VmHWM:") as f64 / 1024.0
    );
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gongkai-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn main() {
    // `cargo bench` passes `--bench`; a filter that names nothing here skips the whole run.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"daemon".contains(a.as_str()))
    {
        return;
    }
    gongkai::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("daemon benchmark, {cores} cores, windows of {WINDOW:?}");

    // 1. The example county, as the README's first command runs it.
    let dir = temp("county");
    let port = free_port();
    county(&dir, port);
    let daemon = Daemon::start(&dir, port);
    let count = 10;
    runtime.block_on(settled(&client, &daemon, count));
    std::thread::sleep(Duration::from_secs(2));
    report_memory("example county (10 displays)", &daemon);
    println!(
        "example county: CPU {:.2} % of a core",
        daemon.cpu_percent(WINDOW)
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);

    // 2. 200 displays, one item each that never changes: the daemon has nothing to do.
    let dir = temp("still");
    let port = free_port();
    generated(&dir, port, 1, "8s");
    let daemon = Daemon::start(&dir, port);
    runtime.block_on(settled(&client, &daemon, DISPLAYS));
    std::thread::sleep(Duration::from_secs(2));
    report_memory("200 displays, still", &daemon);
    println!(
        "200 displays, still: CPU {:.2} % of a core",
        daemon.cpu_percent(WINDOW)
    );
    // Reload to screen: a title edited on disk, until all 200 displays moved on.
    let edited = Instant::now();
    write(&dir, "playlists/all.yaml", &playlist(1, "8s", "公告"));
    let (first, all) = runtime.block_on(async {
        let mut first = None;
        loop {
            if let Some(list) = json(&client, &format!("{}/api/displays", daemon.base)).await
                && let Some(list) = list.as_array()
            {
                let moved = list
                    .iter()
                    .filter(|d| {
                        d["current"]["title"]
                            .as_str()
                            .is_some_and(|t| t.contains("公告"))
                    })
                    .count();
                if moved > 0 && first.is_none() {
                    first = Some(edited.elapsed());
                }
                if moved == DISPLAYS {
                    return (first.unwrap_or_default(), edited.elapsed());
                }
            }
            assert!(
                edited.elapsed() < Duration::from_secs(30),
                "the edit never arrived"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    println!(
        "200 displays: playlist edit to screen: first display {:.0} ms, all 200 {:.0} ms",
        first.as_secs_f64() * 1000.0,
        all.as_secs_f64() * 1000.0
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);

    // 3. 200 displays, a new page item every 2 s on each: 100 slot boundaries a second.
    let dir = temp("busy");
    let port = free_port();
    generated(&dir, port, 5, "2s");
    let daemon = Daemon::start(&dir, port);
    runtime.block_on(settled(&client, &daemon, DISPLAYS));
    let cpu = daemon.cpu_percent(WINDOW);
    report_memory("200 displays, an item every 2 s", &daemon);
    println!("200 displays, an item every 2 s: CPU {cpu:.2} % of a core");
    if let Some(status) = runtime.block_on(json(&client, &format!("{}/api/status", daemon.base))) {
        let l = &status["slot_lateness"];
        println!(
            "slot boundary to link: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            l["samples"],
            l["p50_ms"].as_f64().unwrap_or(f64::NAN),
            l["p99_ms"].as_f64().unwrap_or(f64::NAN),
            l["max_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    drop(daemon);
    let _ = std::fs::remove_dir_all(&dir);
}
