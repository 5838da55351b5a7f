//! The operator's tools on the SMS ledger, end to end: `gongkai sms cancel` stopping a send
//! running in another process, the rows in doubt (`sms unknown`, `sms resend`), consent
//! records from an import, and the ledger's faults — a full disk (SQLite's `max_page_count`,
//! which no user, not even root, can bypass), a ledger that can only be read, and (as root, on
//! request) a full and a read-only tmpfs.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use gongkai::sms::dispatch::{DispatchError, Dispatcher, Options, SendOptions};
use gongkai::sms::ledger::{Ledger, LedgerError, OpenOptions, State};
use gongkai::sms::subscribers::Subscriber;
use gongkai::store::{Action, AuditKind, Store};

use crate::sms_dispatch::{
    Server, aliyun_signature_ok, aliyun_sms, decode, form, get, gongkai_cmd, local, options, site,
    subscriber,
};

fn ledger_path(site: &Path) -> std::path::PathBuf {
    site.join("var/sms-ledger.sqlite")
}

/// The ledger as a bystander opens it: rows `sending` (another process's calls) left alone.
fn beside(path: &Path) -> Ledger {
    Ledger::open_with(
        path,
        0,
        OpenOptions {
            recover: false,
            ..OpenOptions::default()
        },
    )
    .unwrap()
}

fn many(n: usize) -> Vec<Subscriber> {
    (0..n)
        .map(|i| subscriber(&format!("138{i:08}"), &[]))
        .collect()
}

async fn blocking(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// -- cancel ---------------------------------------------------------------------------------

/// A slow Alibaba stand-in: checks each call's signature, records the numbers it takes, says
/// when the first call arrived, and answers each after a second.
#[derive(Default)]
struct Slow {
    taken: Mutex<Vec<String>>,
    first: tokio::sync::Notify,
}

async fn slow_gateway(slow: Arc<Slow>, body: Bytes) -> (StatusCode, String) {
    if !aliyun_signature_ok(&body, "testSecret") {
        return (
            StatusCode::BAD_REQUEST,
            r#"{"Code":"SignatureDoesNotMatch"}"#.into(),
        );
    }
    let pairs = form(&body);
    let numbers: Vec<String> =
        serde_json::from_str(&decode(get(&pairs, "PhoneNumberJson").unwrap_or("[]"))).unwrap();
    let first = {
        let mut taken = slow.taken.lock().unwrap();
        let first = taken.is_empty();
        taken.extend(numbers);
        first
    };
    if first {
        slow.first.notify_one();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    (StatusCode::OK, r#"{"Code":"OK","BizId":"b"}"#.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_cancel_from_a_second_process_stops_a_running_send_at_its_next_batch() {
    const SUBSCRIBERS: usize = 600;
    let slow = Arc::new(Slow::default());
    let state = slow.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| slow_gateway(state.clone(), body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let sms = aliyun_sms(port);
    let site = site(&sms[..sms.find("    - id: local").unwrap()]);
    let path = ledger_path(site.path());
    Ledger::open(&path, 0)
        .unwrap()
        .import_subscribers(&many(SUBSCRIBERS), 0)
        .unwrap();

    // 100 numbers per call, 4 calls in flight: 6 calls, the last two wait for a slot.
    let sender = gongkai_cmd(site.path(), &["sms", "send", "n1", "--urgent"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(60), slow.first.notified())
        .await
        .expect("the send reached the gateway");
    let cancel = blocking(gongkai_cmd(
        site.path(),
        &["sms", "cancel", "n1", "--by", "张三"],
    ))
    .await;
    assert_eq!(cancel.status.code(), Some(0), "{}", text(&cancel.stderr));
    // What the ledger says right after the cancel committed.
    let at_cancel = beside(&path).counts(Some("n1")).unwrap();
    let cancelled = at_cancel.cancelled;
    assert!(cancelled > 0 && at_cancel.queued == 0, "{at_cancel:?}");
    assert_eq!(
        text(&cancel.stdout),
        format!("bulletin n1: {cancelled} message(s) cancelled; none of them will be sent\n")
    );

    let out = tokio::task::spawn_blocking(move || sender.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let end = beside(&path).counts(Some("n1")).unwrap();
    println!(
        "cancel: {} sent, {} cancelled of {SUBSCRIBERS}",
        end.sent, end.cancelled
    );
    // No row that was still queued when the cancel committed was sent afterwards.
    assert_eq!(end.sent, at_cancel.sending + at_cancel.sent);
    assert_eq!(end.cancelled, cancelled);
    assert_eq!(
        (end.queued, end.sending, end.unknown, end.failed),
        (0, 0, 0, 0)
    );
    assert_eq!(end.sent + end.cancelled, SUBSCRIBERS as u64);
    assert_eq!(
        text(&out.stdout),
        format!(
            "{SUBSCRIBERS} recipient(s), {SUBSCRIBERS} new; sent {}, failed 0, unknown 0, put off 0, cancelled {cancelled}\n",
            end.sent
        ),
        "the sender's counts add up"
    );
    // The gateway got fewer than all, each once, and exactly the rows recorded sent.
    let taken = slow.taken.lock().unwrap().clone();
    let unique: BTreeSet<String> = taken.iter().cloned().collect();
    assert_eq!(unique.len(), taken.len(), "no number taken twice");
    assert!(taken.len() < SUBSCRIBERS);
    let ledger = beside(&path);
    let sent: BTreeSet<String> = ledger
        .in_state(State::Sent, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.number)
        .collect();
    assert_eq!(sent, unique);
    assert!(
        ledger
            .in_state(State::Cancelled, 10_000)
            .unwrap()
            .iter()
            .all(|r| r.reason.as_deref() == Some("cancelled by 张三"))
    );

    // The audit has who and how many; status shows them.
    let store = Store::open(&gongkai::store::default_path(site.path())).unwrap();
    let now = chrono::Utc::now();
    let actions: Vec<_> = store
        .audit(now - chrono::Duration::hours(1), now, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == AuditKind::Action(Action::SmsCancelled))
        .collect();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].item.as_deref(), Some("n1"));
    assert_eq!(actions[0].by.as_deref(), Some("张三"));
    assert_eq!(actions[0].title, cancelled.to_string());
    let status = blocking(gongkai_cmd(site.path(), &["sms", "status", "n1"])).await;
    assert!(
        text(&status.stdout).contains(&format!("cancelled {cancelled}\n")),
        "{}",
        text(&status.stdout)
    );
    // Nothing left: a second cancel says so and exits 1.
    let again = blocking(gongkai_cmd(site.path(), &["sms", "cancel", "n1"])).await;
    assert_eq!(again.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_item_stops_the_rows_not_yet_handed_over_and_the_digest_waits() {
    let h = crate::sms_dispatch::Harness::new(
        "sms:\n  signature: 县\n  digest: true\n",
        &many(3),
        options(),
    );
    // With the digest, n1 waits for the morning: cancelling it leaves nothing to send.
    h.dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(h.ledger().waiting(Some("n1")).unwrap(), 3);
    let n = h
        .dispatcher
        .cancel_item("n1", local("2026-12-01 11:00"))
        .unwrap();
    assert_eq!(n, 3);
    h.set("2026-12-02 08:30");
    let c = h.dispatcher.run_due().await.unwrap();
    assert_eq!(c.sent, 0);
    assert!(h.outbox().is_empty());
    assert_eq!(h.ledger().cancelled_waiting(Some("n1")).unwrap(), 3);
}

// -- in doubt -------------------------------------------------------------------------------

fn kannel_site(port: u16) -> String {
    format!(
        "sms:\n  signature: 县\n  gateways:\n    - {{ id: k, kind: kannel, url: \"http://127.0.0.1:{port}\", username: u, secret_env: KANNEL_SECRET }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_resend_needs_a_reconciliation_and_a_confirmation_and_records_who() {
    // The first call's answer is unreadable (in doubt); the later ones are accepted.
    let server = Server::start(Box::new(|seen, i| {
        let query = seen.uri.query().unwrap_or("");
        if !query.contains("password=kpass") {
            return (403, "Authorization failed".into());
        }
        if i == 0 {
            (200, "<html>proxy</html>".into())
        } else {
            (202, "0: Accepted for delivery".into())
        }
    }))
    .await;
    let h = crate::sms_dispatch::Harness::new(&kannel_site(server.port), &many(3), options());
    let c = h
        .dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    assert_eq!(c.unknown, 3);
    let cmd = |args: &[&str]| {
        let mut cmd = gongkai_cmd(h.site.path(), args);
        cmd.env("KANNEL_SECRET", "kpass");
        cmd
    };

    let listed = blocking(cmd(&["sms", "unknown"])).await;
    let stdout = text(&listed.stdout);
    assert_eq!(listed.status.code(), Some(1), "rows in doubt: exit 1");
    assert!(stdout.starts_with("3 message(s) in doubt"), "{stdout}");
    assert!(stdout.contains("  n1  138****0000  k  since "), "{stdout}");
    assert_eq!(stdout.matches("not reconciled yet").count(), 3, "{stdout}");
    assert!(!stdout.contains("13800000000"), "numbers are masked");

    // Never reconciled: refused, with the hint.
    let refused = blocking(cmd(&["sms", "resend", "--confirm", "--by", "李四"])).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("run `gongkai sms reconcile` first"),
        "{}",
        text(&refused.stderr)
    );
    // --confirm needs --by.
    let usage = blocking(cmd(&["sms", "resend", "--confirm"])).await;
    assert_eq!(usage.status.code(), Some(2));

    // Kannel cannot be polled: a reconciliation asks, and the rows stay in doubt.
    let reconciled = blocking(cmd(&["sms", "reconcile"])).await;
    assert_eq!(
        reconciled.status.code(),
        Some(1),
        "{}",
        text(&reconciled.stderr)
    );
    let listed = text(
        &blocking(cmd(&["sms", "unknown", "--item", "n1"]))
            .await
            .stdout,
    );
    assert_eq!(listed.matches("reconciled 20").count(), 3, "{listed}");

    let dry = blocking(cmd(&["sms", "resend", "n1"])).await;
    assert_eq!(dry.status.code(), Some(0));
    assert!(
        text(&dry.stdout).starts_with(
            "3 message(s) still in doubt after a reconciliation would be queued again"
        )
    );
    assert_eq!(
        h.ledger().counts(Some("n1")).unwrap().unknown,
        3,
        "a dry run changes nothing"
    );

    let done = blocking(cmd(&["sms", "resend", "n1", "--confirm", "--by", "李四"])).await;
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(text(&done.stdout).starts_with("3 message(s) queued again, confirmed by 李四"));
    let rows = h.ledger().rows_of("n1", 10).unwrap();
    assert!(
        rows.iter().all(|r| r.state == State::Queued
            && r.resent_by.as_deref() == Some("李四")
            && r.resent_at.is_some()),
        "{rows:?}"
    );

    // The dispatcher sends them once more; the gateway saw each number twice in all.
    let c = h.dispatcher.run_due().await.unwrap();
    assert_eq!(c.sent, 3);
    assert_eq!(server.requests().len(), 2);

    let store = Store::open(&gongkai::store::default_path(h.site.path())).unwrap();
    let now = chrono::Utc::now();
    let confirmed: Vec<_> = store
        .audit(now - chrono::Duration::hours(1), now, None)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == AuditKind::Action(Action::SmsResendConfirmed))
        .collect();
    assert_eq!(confirmed.len(), 1);
    assert_eq!(
        (
            confirmed[0].item.as_deref(),
            confirmed[0].by.as_deref(),
            confirmed[0].title.as_str()
        ),
        (Some("n1"), Some("李四"), "3")
    );
}

// -- consent ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_import_records_consent_a_td_reply_records_the_opt_out_and_sms_consent_shows_both() {
    let h = crate::sms_dispatch::Harness::new("sms: { signature: 测试县政务公开 }", &[], options());
    h.site.write(
        "subs.csv",
        "号码,姓名,同意方式,同意时间\n\
         13800138000,张三,窗口登记,2026-11-01 09:30\n\
         13900139000,李四,,\n\
         18612345678,王五,退订,\n",
    );
    let cmd = |args: &[&str]| {
        let mut cmd = gongkai_cmd(h.site.path(), args);
        cmd.current_dir(h.site.path());
        cmd
    };
    let out = blocking(cmd(&["sms", "import", "subs.csv"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 number(s) withdrew consent in the file: opted out for good"),
        "{}",
        text(&out.stdout)
    );
    // A TD reply through the gateway's callback.
    h.dispatcher
        .reply("outbox", b"from=%2B8613800138000&text=TD")
        .unwrap();

    let out = blocking(cmd(&["sms", "consent", "+86 138-0013-8000"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "consent history of 13800138000 (when, what, how, from where):"
    );
    assert_eq!(
        lines[1],
        "  2026-11-01 09:30  opt-in  窗口登记  import of subs.csv"
    );
    assert!(
        lines[2].ends_with("  opt-out  短信回复  outbox"),
        "{stdout}"
    );
    assert_eq!(lines[3], "now: opted out (kept forever)");
    assert_eq!(lines.len(), 4);

    // No consent column: the import itself, at import time.
    let out = blocking(cmd(&["sms", "consent", "13900139000"])).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  opt-in  导入  import of subs.csv\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("now: not opted out\n"), "{stdout}");
    // A withdrawal in the file is an opt-out by the import.
    let out = blocking(cmd(&["sms", "consent", "18612345678"])).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  opt-out  导入  import of subs.csv\n"),
        "{stdout}"
    );
    assert!(h.ledger().opt_outs().unwrap().contains("18612345678"));
    // Nothing recorded, or not a number.
    assert_eq!(
        blocking(cmd(&["sms", "consent", "13700137000"]))
            .await
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        blocking(cmd(&["sms", "consent", "12345"]))
            .await
            .status
            .code(),
        Some(1)
    );
}

// -- retention ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_texts_are_pruned_after_retention_keeping_the_hash_the_audit_has() {
    let h = crate::sms_dispatch::Harness::new(
        "sms: { signature: 测试县政务公开 }",
        &many(2),
        options(),
    );
    h.dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    let id = h.ledger().item_message("n1").unwrap().unwrap();
    let text = h.ledger().message(id).unwrap().unwrap().text;
    let keep = Duration::from_secs(180 * 86_400);
    h.set("2027-05-30 10:00");
    assert_eq!(h.dispatcher.prune_texts(keep).unwrap(), 0, "179 days old");
    h.set("2027-06-01 10:00");
    assert_eq!(h.dispatcher.prune_texts(keep).unwrap(), 1);
    assert_eq!(h.ledger().message(id).unwrap().unwrap().text, "");
    let (hash, pruned_at) = h.ledger().message_hash(id).unwrap().unwrap();
    assert_eq!(
        hash,
        gongkai::store::text_hash(&text),
        "the audit's hash of the bulletin"
    );
    assert_eq!(pruned_at, Some(local("2027-06-01 10:00").timestamp()));
    let c = h.dispatcher.status(Some("n1")).unwrap();
    assert_eq!((c.sent, c.total()), (2, 2), "every row kept");
    // Sending the item again to a new subscriber builds a new message, not an empty one.
    h.ledger()
        .import_subscribers(&[subscriber("13900139000", &[])], 0)
        .unwrap();
    h.dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    let last = h.outbox().pop().unwrap();
    assert_eq!(last["text"], serde_json::Value::String(text));
}

// -- faults ---------------------------------------------------------------------------------

/// An Alibaba stand-in that checks each call's signature, records every number it takes, and
/// accepts the call with a long `BizId` — so that recording the outcome needs room in the
/// ledger, as much as marking the rows `sending` did.
async fn counting_aliyun() -> (Server, Arc<Mutex<HashMap<String, u32>>>) {
    let taken: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let t = taken.clone();
    let server = Server::start(Box::new(move |seen, _| {
        if !aliyun_signature_ok(&seen.body, "testSecret") {
            return (400, r#"{"Code":"SignatureDoesNotMatch"}"#.into());
        }
        let pairs = form(&seen.body);
        let numbers: Vec<String> =
            serde_json::from_str(&decode(get(&pairs, "PhoneNumberJson").unwrap_or("[]"))).unwrap();
        let mut taken = t.lock().unwrap();
        for n in numbers {
            *taken.entry(n).or_default() += 1;
        }
        let biz = "9".repeat(200);
        (200, format!(r#"{{"Code":"OK","BizId":"{biz}"}}"#))
    }))
    .await;
    (server, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_mid_fan_out_marks_nothing_sent_that_was_not_accepted_and_resends_nothing() {
    const SUBSCRIBERS: usize = 3_000;
    let (server, taken) = counting_aliyun().await;
    let sms = aliyun_sms(server.port);
    let site = site(&sms[..sms.find("    - id: local").unwrap()]);
    let h = crate::sms_dispatch::Harness::with_site(site, &many(SUBSCRIBERS), options());
    // Queued at night for the morning: the rows exist, nothing is sent yet.
    h.set("2026-12-01 22:00");
    h.dispatcher
        .send_item("n1", &SendOptions::default())
        .await
        .unwrap();
    let path = ledger_path(h.site.path());
    let model = h.site.load().model.unwrap();
    drop(h.dispatcher);
    let pages: u64 = {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
        conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
            .unwrap() as u64
    };

    // The same ledger with room for a few pages more: it fills during the fan-out.
    let clock_at = local("2026-12-02 08:30");
    let full = Dispatcher::new(
        &model,
        h.site.path(),
        &path,
        Arc::new(move || clock_at),
        Options {
            ledger: OpenOptions {
                max_pages: Some(pages + 4),
                ..OpenOptions::default()
            },
            ..options()
        },
    )
    .unwrap();
    let err = full.run_due().await.unwrap_err();
    assert!(
        matches!(err, DispatchError::Ledger(LedgerError::Full(_))),
        "{err:?}"
    );
    assert_eq!(err.key(), "sms.ledger.full");
    let mid = full.status(Some("n1")).unwrap();
    let sent_numbers: BTreeSet<String> = full
        .ledger()
        .in_state(State::Sent, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.number)
        .collect();
    let accepted: BTreeSet<String> = taken.lock().unwrap().keys().cloned().collect();
    println!(
        "full ledger: {} accepted by the gateway; ledger sent {}, sending {}, queued {}; {} outcome(s) unwritten",
        accepted.len(),
        mid.sent,
        mid.sending,
        mid.queued,
        full.ledger().unwritten().unwrap()
    );
    assert!(
        mid.queued > 0,
        "the ledger filled before the end of the fan-out"
    );
    assert!(
        mid.sending > 0,
        "accepted calls whose outcome could not be written stay `sending`"
    );
    assert_eq!(full.ledger().unwritten().unwrap() as u64, mid.sending);
    assert!(
        sent_numbers.is_subset(&accepted),
        "never sent without an accepted answer"
    );
    assert_eq!(mid.unknown + mid.failed, 0);
    drop(full);

    // Room again (a new process): the rows whose outcome was not written are in doubt, the
    // queued ones are sent, and no number reaches the gateway twice.
    let again = Dispatcher::new(
        &model,
        h.site.path(),
        &path,
        Arc::new(move || clock_at),
        options(),
    )
    .unwrap();
    assert_eq!(again.recovered(), mid.sending);
    again.run_due().await.unwrap();
    let end = again.status(Some("n1")).unwrap();
    assert_eq!(end.sent + end.unknown, SUBSCRIBERS as u64);
    assert_eq!(end.unknown, mid.sending);
    let taken = taken.lock().unwrap();
    assert_eq!(taken.len(), SUBSCRIBERS);
    assert!(taken.values().all(|n| *n == 1), "no number taken twice");
    let unknown: BTreeSet<String> = again
        .ledger()
        .in_state(State::Unknown, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.number)
        .collect();
    assert!(
        unknown.is_subset(&accepted),
        "the rows in doubt are calls that were made"
    );
}

#[test]
fn a_ledger_that_can_only_be_read_is_refused_at_open_with_a_clear_error() {
    let site = site("sms: { signature: 测试县政务公开 }");
    let path = ledger_path(site.path());
    drop(Ledger::open(&path, 0).unwrap());
    let model = site.load().model.unwrap();
    let err = Dispatcher::new(
        &model,
        site.path(),
        &path,
        Arc::new(chrono::Utc::now),
        Options {
            ledger: OpenOptions {
                read_only: true,
                ..OpenOptions::default()
            },
            ..options()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, DispatchError::Ledger(LedgerError::ReadOnly(_))),
        "{err:?}"
    );
    let message = gongkai::i18n::tr(
        gongkai::i18n::Lang::En,
        err.key(),
        &[("reason", &err.to_string())],
    );
    assert!(
        message.starts_with(
            "the SMS ledger cannot be written (read-only file, directory or filesystem)"
        ),
        "{message}"
    );
}

/// A small tmpfs, unmounted on drop. Needs root: anything else fails loudly.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mount = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount(8)");
        assert!(
            mount.success(),
            "mounting a tmpfs needs root (CI runs this as root)"
        );
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// Fills the filesystem but for `spare` bytes.
    fn fill(&self, spare: usize) -> std::fs::File {
        std::fs::write(self.path().join("reserve"), vec![0u8; spare]).unwrap();
        let mut filler = std::fs::File::create(self.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
        let _ = filler.sync_all();
        std::fs::remove_file(self.path().join("reserve")).unwrap();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

/// Root only: the daemon with its ledger on a full filesystem says so in its log and in
/// `/api/sms`, and sends nothing it cannot record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs"]
async fn the_daemon_on_a_full_ledger_says_so_in_its_log_and_api_and_sends_nothing_unrecorded() {
    use chrono::Timelike as _;
    let fs = Tmpfs::mount("512k");
    let path = fs.path().join("ledger.sqlite");
    Ledger::open(&path, 0)
        .unwrap()
        .import_subscribers(&many(2_000), 0)
        .unwrap();
    let filler = fs.fill(64 * 1024);

    let admin = crate::mqtt::free_port();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Shanghai);
    let (quiet_from, quiet_until) = ((now.hour() + 2) % 24, (now.hour() + 3) % 24);
    let site = crate::fixture::Fixture::empty();
    site.write(
        "gongkai.yaml",
        format!(
            "site: 测试县政务公开\ntimezone: Asia/Shanghai\nreview: {{ required: draft }}\nsimulate: true\nadmin: {{ listen: 127.0.0.1:{admin} }}\nsms:\n  signature: 测试县政务公开\n  quiet_hours: {{ from: \"{quiet_from:02}:00\", until: \"{quiet_until:02}:00\" }}\n  second_approval_above: 100000\ndisplays:\n  - id: hall\n    profile: board\n    link: {{ simulated: true }}\n"
        ),
    )
    .write("hw-profiles/board.yaml", crate::fixture::PROFILE)
    .write(
        "playlists/main.yaml",
        "id: main\ntargets: [hall]\nitems:\n  - { id: cg-1, title: 城区道路照明改造工程中标结果公示, category: 政府采购, channels: [board, sms] }\n",
    );
    let log = site.path().join("daemon.log");
    let mut daemon = std::process::Command::new(env!("CARGO_BIN_EXE_gongkai"))
        .args(["run", "--lang", "en", "--ledger"])
        .arg(&path)
        .arg(site.path())
        .env("GONGKAI_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    gongkai::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let side = loop {
        let answer = client
            .get(format!("http://127.0.0.1:{admin}/api/sms"))
            .send()
            .await;
        if let Ok(answer) = answer
            && let Ok(json) = answer.json::<serde_json::Value>().await
            && json["side"]["last_error"].is_string()
        {
            break json["side"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        side["last_error"]
            .as_str()
            .unwrap()
            .contains("disk is full"),
        "{side}"
    );
    assert!(logged.contains("disk is full"), "{logged}");
    drop(filler);
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let ledger = Ledger::open(&path, 0).unwrap();
    let outbox =
        std::fs::read_to_string(site.path().join("var/sms-outbox.jsonl")).unwrap_or_default();
    let written: BTreeSet<i64> = outbox
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["delivery"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let sent: BTreeSet<i64> = ledger
        .in_state(State::Sent, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        sent.is_subset(&written),
        "nothing sent that the outbox did not take"
    );
}

/// Root only: a real full filesystem and a real read-only one (tmpfs), through the binary.
/// CI runs ignored tests as root; anywhere else this fails loudly rather than pass unseen.
#[test]
#[ignore = "needs root to mount a tmpfs"]
fn on_a_full_and_on_a_read_only_tmpfs_the_binary_says_so_and_sends_nothing_unrecorded() {
    let mnt = Tmpfs::mount("384k");
    // 1,500 recipients: above the default limit for one approver.
    let site = site("sms: { signature: 测试县政务公开, second_approval_above: 100000 }");
    let path = mnt.path().join("ledger.sqlite");
    Ledger::open(&path, 0)
        .unwrap()
        .import_subscribers(&many(1_500), 0)
        .unwrap();
    // Room for SQLite's shared-memory file and a little of the bulletin, not for all of it.
    let filler = mnt.fill(64 * 1024);

    let ledger_arg = path.to_str().unwrap();
    let out = gongkai_cmd(
        site.path(),
        &["sms", "send", "n1", "--urgent", "--ledger", ledger_arg],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("disk is full"),
        "{}",
        text(&out.stderr)
    );
    drop(filler);
    std::fs::remove_file(mnt.path().join("filler")).unwrap();
    let ledger = Ledger::open(&path, 0).unwrap();
    let outbox =
        std::fs::read_to_string(site.path().join("var/sms-outbox.jsonl")).unwrap_or_default();
    let written: BTreeSet<i64> = outbox
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["delivery"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let sent: BTreeSet<i64> = ledger
        .in_state(State::Sent, 10_000)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(
        sent.is_subset(&written),
        "nothing sent that the outbox did not take"
    );
    drop(ledger);

    // Read-only: the binary refuses at open, with the reason.
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(mnt.path())
        .status()
        .unwrap();
    assert!(remount.success());
    let out = gongkai_cmd(
        site.path(),
        &["sms", "send", "n1", "--urgent", "--ledger", ledger_arg],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("cannot be written"),
        "{}",
        text(&out.stderr)
    );
}
