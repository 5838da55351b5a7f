//! SMS dispatch end to end: one bulletin to 100,000 subscribers through a fast local gateway
//! (an in-process HTTP server answering as Kannel does, 100 numbers per call, 8 calls in
//! flight, no pacing), with the ledger on disk (WAL, synchronous=FULL): `sending` committed
//! before every call, the outcome after it.
//!
//! Printed before criterion runs: messages/s of the whole fan-out and the process's peak
//! resident memory (VmHWM from /proc/self/status) — the peak is reset after the subscribers
//! are imported, so it measures the send. Targets: ≥ 5,000 messages/s, ≤ 50 MB.
//! Criterion then times a 2,000-subscriber fan-out (fresh ledger each iteration).
//! `docs/sms.md` quotes the figures.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use gongkai::sms::dispatch::{Dispatcher, Limits, Options, SendOptions};
use gongkai::sms::ledger::Ledger;
use gongkai::sms::subscribers::Subscriber;

const SITE: &str = "\
site: 基准县
timezone: Asia/Shanghai
sms:
  signature: 基准县政务公开
  read_more: 县政府网站
  quiet_hours: { from: \"00:00\", until: \"00:00\" }
  daily_cap: 5
  gateways:
    - id: fast
      kind: kannel
      url: http://127.0.0.1:PORT
      username: bench
      secret_env: BENCH_SECRET
displays:
  - id: square
    profile: board
    link: { serial: /dev/ttyUSB0, baud: 9600, address: 1 }
";

const PROFILE: &str = "\
width: 128
height: 32
pixel: mono
font: wqy16
protocol: gongkai
serial: { bauds: [9600], buffer: 1024 }
";

const PLAYLIST: &str = "\
id: main
targets: [square]
items:
  - id: cg-1
    title: 城区道路照明改造工程中标结果公示
    body: 中标单位为赣州明辉照明工程有限公司，中标金额人民币1,234,567.89元。
    category: 政府采购
    channels: [board, sms]
";

/// The local gateway: Kannel's answer to every call.
fn start_gateway(rt: &tokio::runtime::Runtime) -> u16 {
    rt.block_on(async {
        let app = axum::Router::new()
            .fallback(|| async { (axum::http::StatusCode::ACCEPTED, "0: Accepted for delivery") });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        port
    })
}

fn site(dir: &Path, port: u16) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("gongkai.yaml", &SITE.replace("PORT", &port.to_string()));
    write("hw-profiles/board.yaml", PROFILE);
    write("playlists/main.yaml", PLAYLIST);
}

/// Imports `n` subscribers in chunks, so the import itself stays small.
fn import(ledger: &Ledger, n: usize) {
    for start in (0..n).step_by(5_000) {
        let chunk: Vec<Subscriber> = (start..(start + 5_000).min(n))
            .map(|i| Subscriber {
                number: format!("138{i:08}"),
                name: String::new(),
                groups: BTreeSet::new(),
                topics: BTreeSet::new(),
            })
            .collect();
        ledger.import_subscribers(&chunk, 0).expect("import");
    }
}

fn dispatcher(dir: &Path) -> Dispatcher {
    let loaded = gongkai::config::load(dir);
    let model = loaded.model.expect("bench site is valid");
    let mut options = Options {
        env: Arc::new(|_: &str| Some("secret".into())),
        ..Options::default()
    };
    options.limits.insert(
        "fast".into(),
        Limits {
            per_second: f64::INFINITY,
            concurrent: 8,
        },
    );
    Dispatcher::new(
        &model,
        dir,
        &dir.join("var/sms-ledger.sqlite"),
        Arc::new(gongkai::sms::dispatch::SystemClock),
        options,
    )
    .expect("dispatcher")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resets VmHWM to the current resident size (Linux: `5` into clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// With `GONGKAI_BENCH_KANNEL` set to a running Kannel's sendsms URL (user `gongkai`, password
/// `kpass`, as in `tests/fixtures/kannel/kannel.conf`): gongkai's messages/s into it, and —
/// when `ab` is installed — what `ab -k -c 8` reaches sending single messages to it.
fn kannel_comparison(rt: &tokio::runtime::Runtime) {
    let Ok(url) = std::env::var("GONGKAI_BENCH_KANNEL") else {
        println!("kannel comparison: skipped (set GONGKAI_BENCH_KANNEL=http://127.0.0.1:13013)");
        return;
    };
    const N: usize = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    site(dir.path(), 0);
    let text = std::fs::read_to_string(dir.path().join("gongkai.yaml")).expect("site");
    let text = text.replace("http://127.0.0.1:0", &url).replace(
        "username: bench",
        "username: gongkai\n      from: \"10690000\"",
    );
    std::fs::write(dir.path().join("gongkai.yaml"), text).expect("site");
    let loaded = gongkai::config::load(dir.path());
    let model = loaded.model.expect("kannel site is valid");
    let mut options = Options {
        env: Arc::new(|_: &str| Some("kpass".into())),
        ..Options::default()
    };
    options.limits.insert(
        "fast".into(),
        Limits {
            per_second: f64::INFINITY,
            concurrent: 8,
        },
    );
    let d = Dispatcher::new(
        &model,
        dir.path(),
        &dir.path().join("var/sms-ledger.sqlite"),
        Arc::new(gongkai::sms::dispatch::SystemClock),
        options,
    )
    .expect("dispatcher");
    import(d.ledger(), N);
    let start = Instant::now();
    let counts = rt
        .block_on(d.send_item("cg-1", &SendOptions::default()))
        .expect("send");
    let ours = counts.sent as f64 / start.elapsed().as_secs_f64();
    println!(
        "kannel: gongkai {:.0} messages/s ({} sent, {} failed, {} unknown)",
        ours, counts.sent, counts.failed, counts.unknown
    );
    let single = format!(
        "{}/cgi-bin/sendsms?username=gongkai&password=kpass&from=10690000&to=13800138000&coding=2&charset=UTF-8&text=%E3%80%90%E5%8E%BF%E3%80%91%E5%85%AC%E5%91%8A",
        url.trim_end_matches('/')
    );
    match std::process::Command::new("ab")
        .args(["-q", "-k", "-c", "8", "-n", "20000", &single])
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let rate = text
                .lines()
                .find(|l| l.starts_with("Requests per second"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|r| r.parse::<f64>().ok());
            match rate {
                Some(r) => println!(
                    "kannel: ab -k -c 8 {r:.0} messages/s; gongkai reaches {:.0}% of it",
                    100.0 * ours / r
                ),
                None => println!("kannel: ab gave no rate"),
            }
        }
        Err(_) => println!("kannel: ab not installed (apache2-utils): no comparison"),
    }
}

fn fan_out(c: &mut Criterion) {
    gongkai::sms::http::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let port = start_gateway(&rt);

    const N: usize = 100_000;
    let dir = tempfile::tempdir().expect("tempdir");
    site(dir.path(), port);
    let d = dispatcher(dir.path());
    import(d.ledger(), N);
    let setup_peak = status_kib("VmHWM:").unwrap_or(0);
    reset_peak();
    let start = Instant::now();
    let counts = rt
        .block_on(d.send_item("cg-1", &SendOptions::default()))
        .expect("send");
    let elapsed = start.elapsed();
    assert_eq!(counts.sent, N as u64, "{counts:?}");
    let peak = status_kib("VmHWM:").unwrap_or(0);
    println!(
        "sms fan-out: {N} messages in {:.2} s = {:.0} messages/s; peak resident {:.1} MB during the send (VmHWM; {:.1} MB after the import, before the reset)",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        peak as f64 / 1024.0,
        setup_peak as f64 / 1024.0
    );
    drop(d);
    kannel_comparison(&rt);

    let mut group = c.benchmark_group("sms");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(2_000));
    group.bench_function("fan_out_2000", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                site(dir.path(), port);
                let d = dispatcher(dir.path());
                import(d.ledger(), 2_000);
                (dir, d)
            },
            |(dir, d)| {
                let counts = rt
                    .block_on(d.send_item("cg-1", &SendOptions::default()))
                    .expect("send");
                assert_eq!(counts.sent, 2_000);
                (dir, d)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
