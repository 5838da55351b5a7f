use chrono::TimeZone as _;

use super::*;

fn t(hh: u32, mm: u32) -> DateTime<Utc> {
    // 2026-12-01, UTC.
    Utc.with_ymd_and_hms(2026, 12, 1, hh, mm, 0)
        .single()
        .expect("valid time")
}

fn slot(
    display: &str,
    kind: SlotKind,
    item: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> ShownSlot {
    ShownSlot {
        display: display.to_owned(),
        kind,
        playlist: (kind == SlotKind::Item).then(|| "prime-time".to_owned()),
        item: Some(item.to_owned()),
        title: format!("title of {item}"),
        from,
        planned_until: until,
    }
}

fn interrupt(
    id: &str,
    targets: &[&str],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> StoredInterrupt {
    StoredInterrupt {
        id: id.to_owned(),
        targets: targets.iter().map(|d| (*d).to_owned()).collect(),
        start,
        end,
        text: format!("{id}: 暴雨红色预警"),
        created_by: "clerk".to_owned(),
        created_at: start,
        also_sms: true,
    }
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("var/gongkai.db");
    (dir, path)
}

/// What the audit lists, as `display kind item from-to` (hours:minutes, UTC).
fn listed(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    display: Option<&str>,
) -> Vec<String> {
    store
        .audit(from, to, display)
        .expect("audit")
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}-{}{}",
                r.display.as_deref().unwrap_or("-"),
                r.kind.code(),
                r.item.as_deref().unwrap_or("-"),
                r.from.format("%H:%M"),
                r.to.format("%H:%M"),
                if r.to_planned { "?" } else { "" }
            )
        })
        .collect()
}

#[test]
fn a_new_file_is_created_private_in_wal_mode_at_the_current_version() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    assert_eq!(store.version().expect("version"), VERSION);
    let conn = store.lock();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    // 2 = FULL.
    let sync: i64 = conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2);
    let app: i32 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .expect("application_id");
    assert_eq!(app, APPLICATION_ID);
}

#[cfg(unix)]
#[test]
fn the_file_and_its_wal_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    store
        .slot_started(&slot("square", SlotKind::Idle, "idle", t(1, 0), t(2, 0)))
        .expect("write");
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let wal = path.with_extension("db-wal");
    assert!(wal.exists(), "WAL mode keeps a -wal file while open");
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(path.parent().expect("var/")), 0o700);
    drop(store);

    // A file someone loosened is tightened again on open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    drop(Store::open(&path).expect("reopen"));
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn an_empty_file_is_migrated_to_the_current_version() {
    let (_dir, path) = temp();
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, b"").expect("empty file");
    let mut conn = Connection::open(&path).expect("sqlite");
    assert_eq!(schema::version(&conn).expect("version"), 0);
    let migrated = migrate(&mut conn).expect("migrate");
    assert_eq!(
        migrated,
        Migrated {
            from: 0,
            to: VERSION
        }
    );
    // Once more does nothing.
    assert_eq!(
        migrate(&mut conn).expect("again"),
        Migrated {
            from: VERSION,
            to: VERSION
        }
    );
}

/// Every earlier version, built by applying only the steps up to it and holding data
/// written at that version, opens and keeps its data.
#[test]
fn a_file_of_every_earlier_version_opens_and_keeps_its_rows() {
    for version in 0..=VERSION {
        let (_dir, path) = temp();
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        {
            let mut conn = Connection::open(&path).expect("sqlite");
            let migrated =
                schema::migrate_with(&mut conn, schema::STEPS, version).expect("old version");
            assert_eq!(migrated.to, version);
            if version >= 1 {
                conn.execute(
                    "INSERT INTO shown (display, kind, playlist, item, title, started_ms,
                                        planned_until_ms, ended_ms)
                     VALUES ('square', 'item', 'prime-time', 'cg-2026-118', '公示', ?1, ?2, ?2)",
                    params![t(11, 0).timestamp_millis(), t(11, 5).timestamp_millis()],
                )
                .expect("v1 row");
            }
            if version >= 2 {
                conn.execute(
                    "INSERT INTO withdrawal (item, at_ms, by, reason) VALUES ('zb-1', 0, '张', '')",
                    [],
                )
                .expect("v2 row");
            }
            if version >= 3 {
                conn.execute(
                    "INSERT INTO review (item, stage, by, at_ms, hash)
                     VALUES ('cg-2026-118', 'reviewed', '张', 0, 'h')",
                    [],
                )
                .expect("v3 row");
            }
        }
        let store = Store::open(&path).expect("open migrates");
        assert_eq!(
            store.version().expect("version"),
            VERSION,
            "from v{version}"
        );
        let rows = listed(&store, t(0, 0), t(23, 0), None);
        if version >= 1 {
            assert_eq!(
                rows,
                ["square item cg-2026-118 11:00-11:05"],
                "from v{version}"
            );
        } else {
            assert!(rows.is_empty());
        }
        let withdrawn = store.withdrawn().expect("withdrawn");
        assert_eq!(
            withdrawn.len(),
            usize::from(version >= 2),
            "from v{version}"
        );
        let reviews = store.reviews().expect("reviews");
        assert_eq!(reviews.len(), usize::from(version >= 3), "from v{version}");
    }
}

#[test]
fn reviews_round_trip_and_are_audited() {
    use crate::review::{Record, Stage, Step};
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    let record = Record {
        item: "cg-2026-118".into(),
        step: Step::Stage(Stage::Legal),
        by: "李法制".into(),
        at: t(9, 30),
        hash: "ab12".into(),
    };
    store.add_review(&record).expect("add");
    store
        .add_review(&Record {
            step: Step::MassSms,
            by: "赵".into(),
            at: t(9, 40),
            ..record.clone()
        })
        .expect("add");
    let reviews = store.reviews().expect("reviews");
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0], record);
    assert_eq!(reviews[1].step, Step::MassSms);
    let audit = store.audit(t(0, 0), t(23, 0), None).expect("audit");
    let lines: Vec<(String, String)> = audit
        .iter()
        .map(|r| (r.kind.code().to_owned(), r.by.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        lines,
        [
            ("item-reviewed".to_owned(), "李法制".to_owned()),
            ("sms-second-approval".to_owned(), "赵".to_owned())
        ]
    );
}

#[test]
fn pruning_the_audit_keeps_what_is_younger_and_what_is_in_force() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    let old = slot("square", SlotKind::Item, "cg-old", t(8, 0), t(8, 5));
    let id = store.slot_started(&old).expect("start");
    store.slot_ended(id, t(8, 5)).expect("end");
    let young = slot("square", SlotKind::Item, "cg-new", t(12, 0), t(12, 5));
    let id = store.slot_started(&young).expect("start");
    store.slot_ended(id, t(12, 5)).expect("end");
    // Still on air from before the cutoff: not history yet.
    store
        .slot_started(&slot(
            "town",
            SlotKind::Item,
            "cg-on-air",
            t(9, 0),
            t(13, 0),
        ))
        .expect("start");
    store
        .withdraw("zb-1", t(8, 30), "张", "错字")
        .expect("withdraw");
    store
        .record(Action::SmsCancelled, "cg-old", "张", "3", t(12, 30))
        .expect("record");
    let removed = store.prune_audit(t(10, 0)).expect("prune");
    assert_eq!(
        removed, 2,
        "the old slot and the old withdrawal's audit line"
    );
    let rows = listed(&store, t(0, 0), t(23, 0), None);
    assert_eq!(
        rows,
        [
            "town item cg-on-air 09:00-13:00?",
            "square item cg-new 12:00-12:05",
            "- sms-cancelled cg-old 12:30-12:30"
        ]
    );
    assert_eq!(store.withdrawn().expect("withdrawn"), ["zb-1"]);
}

#[test]
fn a_failing_step_leaves_the_file_at_the_version_before_it() {
    fn broken(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE half_done (x); SELECT * FROM no_such_table;")
    }
    let (_dir, path) = temp();
    drop(Store::open(&path).expect("v1"));
    let mut conn = Connection::open(&path).expect("sqlite");
    let steps: Vec<schema::Step> = schema::STEPS
        .iter()
        .copied()
        .chain([broken as schema::Step])
        .collect();
    let error = schema::migrate_with(&mut conn, &steps, VERSION + 1).expect_err("step fails");
    assert!(
        matches!(error, StoreError::Migration { version, .. } if version == VERSION + 1),
        "{error:?}"
    );
    assert_eq!(schema::version(&conn).expect("version"), VERSION);
    let half: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert_eq!(half, 0, "the failed step's table was rolled back");
}

#[test]
fn a_newer_or_foreign_file_is_refused() {
    let (_dir, path) = temp();
    drop(Store::open(&path).expect("create"));
    Connection::open(&path)
        .expect("sqlite")
        .pragma_update(None, "user_version", VERSION + 1)
        .expect("bump");
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema { found, known }) if found == VERSION + 1 && known == VERSION
    ));
    assert!(matches!(
        Store::open_read_only(&path),
        Err(StoreError::NewerSchema { .. })
    ));

    let other = path.with_file_name("other.db");
    Connection::open(&other)
        .expect("sqlite")
        .execute_batch("CREATE TABLE contacts (name TEXT)")
        .expect("someone else's table");
    assert!(matches!(Store::open(&other), Err(StoreError::Foreign)));

    let text = path.with_file_name("notes.txt");
    std::fs::write(&text, "这不是数据库，只是一段文字。".repeat(100)).expect("text");
    assert!(Store::open(&text).is_err());
    assert!(Store::open_read_only(&text).is_err());
}

#[test]
fn read_only_needs_an_existing_current_file_and_refuses_writes() {
    let (_dir, path) = temp();
    assert!(matches!(
        Store::open_read_only(&path),
        Err(StoreError::Missing(p)) if p == path
    ));
    assert!(!path.exists(), "a read-only open creates nothing");

    let writer = Store::open(&path).expect("open");
    writer
        .slot_started(&slot("square", SlotKind::Item, "a", t(10, 0), t(10, 5)))
        .expect("write");
    // The reader sees what the running writer committed.
    let reader = Store::open_read_only(&path).expect("read-only");
    assert_eq!(
        listed(&reader, t(9, 0), t(11, 0), None),
        ["square item a 10:00-10:05?"]
    );
    let refused = reader.slot_started(&slot("square", SlotKind::Idle, "b", t(10, 5), t(11, 0)));
    assert!(
        matches!(&refused, Err(StoreError::Sqlite(e))
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly)),
        "{refused:?}"
    );
    assert!(reader.close_dangling(t(12, 0)).is_err());
    assert!(
        reader
            .add_interrupt(&interrupt("x", &[], t(10, 0), t(11, 0)))
            .is_err()
    );
    drop(writer);

    // An old file is not migrated by a reader.
    let old = path.with_file_name("old.db");
    drop(Connection::open(&old).expect("v0"));
    assert!(matches!(
        Store::open_read_only(&old),
        Err(StoreError::NeedsMigration {
            found: 0,
            want: VERSION
        })
    ));
}

#[test]
fn a_new_slot_closes_the_previous_one_of_its_display_only() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    store
        .slot_started(&slot("square", SlotKind::Item, "a", t(19, 0), t(19, 2)))
        .expect("a");
    store
        .slot_started(&slot(
            "window-03",
            SlotKind::Idle,
            "idle",
            t(19, 0),
            t(21, 0),
        ))
        .expect("idle");
    // b starts early: a is cut there.
    let b = store
        .slot_started(&slot("square", SlotKind::Item, "b", t(19, 1), t(19, 4)))
        .expect("b");
    assert_eq!(
        listed(&store, t(18, 0), t(22, 0), None),
        [
            "square item a 19:00-19:01",
            "window-03 idle idle 19:00-21:00?",
            "square item b 19:01-19:04?",
        ]
    );
    // Ended on time.
    assert!(store.slot_ended(b, t(19, 4)).expect("end"));
    assert!(
        !store.slot_ended(b, t(19, 5)).expect("twice"),
        "already closed"
    );
    assert!(!store.slot_ended(SlotId(999), t(19, 5)).expect("unknown"));
    assert_eq!(
        listed(&store, t(18, 0), t(22, 0), Some("square")),
        ["square item a 19:00-19:01", "square item b 19:01-19:04"]
    );
    assert!(matches!(
        store.slot_started(&slot("square", SlotKind::Off, "off", t(20, 0), t(19, 0))),
        Err(StoreError::BadInterval { .. })
    ));
}

#[test]
fn the_audit_lists_slots_overlapping_the_half_open_range() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    for (item, from, to) in [
        ("a", t(19, 0), t(19, 30)),
        ("b", t(19, 30), t(19, 32)),
        ("c", t(19, 32), t(19, 33)),
        ("d", t(19, 33), t(20, 0)),
    ] {
        let id = store
            .slot_started(&slot("square", SlotKind::Item, item, from, to))
            .expect("start");
        store.slot_ended(id, to).expect("end");
    }
    // "What did the square show at 19:32?" — c, and not b, which ended at 19:32.
    assert_eq!(
        listed(&store, t(19, 32), t(19, 33), Some("square")),
        ["square item c 19:32-19:33"]
    );
    // A range ending where d starts does not list d; one starting inside a lists a.
    assert_eq!(
        listed(&store, t(19, 10), t(19, 33), None),
        [
            "square item a 19:00-19:30",
            "square item b 19:30-19:32",
            "square item c 19:32-19:33",
        ]
    );
    assert!(listed(&store, t(19, 0), t(20, 0), Some("town")).is_empty());
    assert!(listed(&store, t(20, 0), t(21, 0), None).is_empty());
}

#[test]
fn an_open_slot_is_audited_with_its_planned_end_until_closed() {
    let (_dir, path) = temp();
    {
        let store = Store::open(&path).expect("open");
        store
            .slot_started(&slot("square", SlotKind::Item, "a", t(19, 0), t(19, 30)))
            .expect("a");
        store
            .slot_started(&slot("town", SlotKind::Item, "b", t(19, 0), t(21, 0)))
            .expect("b");
        // The daemon dies here: nothing closes them.
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(
        listed(&store, t(19, 0), t(22, 0), None),
        ["square item a 19:00-19:30?", "town item b 19:00-21:00?"]
    );
    // Restarted at 20:00: a had run its course, b is cut at the restart.
    assert_eq!(store.close_dangling(t(20, 0)).expect("close"), 2);
    assert_eq!(
        listed(&store, t(19, 0), t(22, 0), None),
        ["square item a 19:00-19:30", "town item b 19:00-20:00"]
    );
    assert_eq!(store.close_dangling(t(20, 1)).expect("again"), 0);
}

#[test]
fn a_slot_left_open_is_not_stretched_to_the_next_start() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    store
        .slot_started(&slot("square", SlotKind::Item, "a", t(19, 0), t(19, 30)))
        .expect("a");
    // Restarted at 21:00 without close_dangling: a still ends at its planned 19:30.
    let b = store
        .slot_started(&slot("square", SlotKind::Item, "b", t(21, 0), t(21, 5)))
        .expect("b");
    // A slot that really ran late says so before the next one starts.
    assert!(store.slot_ended(b, t(21, 7)).expect("late end"));
    store
        .slot_started(&slot("square", SlotKind::Idle, "idle", t(21, 7), t(22, 0)))
        .expect("idle");
    assert_eq!(
        listed(&store, t(18, 0), t(23, 0), Some("square")),
        [
            "square item a 19:00-19:30",
            "square item b 21:00-21:07",
            "square idle idle 21:07-22:00?",
        ]
    );
}

#[test]
fn bulletins_and_interrupt_actions_appear_in_the_audit() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    store
        .bulletin_recorded(&Bulletin {
            item: "cg-2026-118".to_owned(),
            title: "中标结果公示".to_owned(),
            text: "【大余县政务公开】中标结果公示".to_owned(),
            recipients: 1200,
            at: t(10, 0),
            by: "clerk".to_owned(),
        })
        .expect("bulletin");
    store
        .add_interrupt(&interrupt("storm", &["square"], t(11, 0), t(13, 0)))
        .expect("interrupt");
    assert!(
        store
            .end_interrupt("storm", t(12, 0), "chief")
            .expect("end")
    );
    store
        .slot_started(&slot(
            "square",
            SlotKind::Interrupt,
            "storm",
            t(11, 0),
            t(13, 0),
        ))
        .expect("slot");
    assert_eq!(
        listed(&store, t(0, 0), t(23, 0), None),
        [
            "- bulletin cg-2026-118 10:00-10:00",
            "- interrupt-added storm 11:00-11:00",
            "square interrupt storm 11:00-13:00?",
            "- interrupt-ended storm 12:00-12:00",
        ]
    );
    let rows = store.audit(t(0, 0), t(23, 0), None).expect("audit");
    assert_eq!(
        rows[0].kind,
        AuditKind::Bulletin {
            recipients: 1200,
            text_sha256: text_hash("【大余县政务公开】中标结果公示"),
        }
    );
    assert_eq!(rows[0].by.as_deref(), Some("clerk"));
    assert_eq!(rows[3].by.as_deref(), Some("chief"));
    // A display's audit is what it showed: no bulletins, no actions.
    assert_eq!(
        listed(&store, t(0, 0), t(23, 0), Some("square")),
        ["square interrupt storm 11:00-13:00?"]
    );
}

#[test]
fn text_hash_is_sha256_hex() {
    assert_eq!(
        text_hash("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn interrupts_are_active_until_their_end_and_survive_a_restart() {
    let (_dir, path) = temp();
    {
        let store = Store::open(&path).expect("open");
        store
            .add_interrupt(&interrupt("storm", &["square", "town"], t(11, 0), t(13, 0)))
            .expect("storm");
        store
            .add_interrupt(&interrupt("later", &[], t(15, 0), t(16, 0)))
            .expect("later");
        store
            .add_interrupt(&interrupt("past", &[], t(8, 0), t(9, 0)))
            .expect("past");
        assert!(matches!(
            store.add_interrupt(&interrupt("storm", &[], t(11, 0), t(12, 0))),
            Err(StoreError::DuplicateInterrupt(id)) if id == "storm"
        ));
        assert!(matches!(
            store.add_interrupt(&interrupt("backwards", &[], t(12, 0), t(11, 0))),
            Err(StoreError::BadInterval { .. })
        ));
    }
    let store = Store::open(&path).expect("restart");
    let active = store.interrupts_active(t(12, 0)).expect("active");
    assert_eq!(
        active,
        [
            interrupt("storm", &["square", "town"], t(11, 0), t(13, 0)),
            interrupt("later", &[], t(15, 0), t(16, 0)),
        ]
    );
    // Ended early: it ends at 12:30 and is not active after.
    assert!(
        store
            .end_interrupt("storm", t(12, 30), "chief")
            .expect("end")
    );
    let ids = |at| -> Vec<String> {
        store
            .interrupts_active(at)
            .expect("active")
            .into_iter()
            .map(|i| format!("{} until {}", i.id, i.end.format("%H:%M")))
            .collect()
    };
    assert_eq!(ids(t(12, 0)), ["storm until 12:30", "later until 16:00"]);
    assert_eq!(ids(t(12, 30)), ["later until 16:00"]);
    // Ending an ended or unknown interrupt changes nothing.
    assert!(
        !store
            .end_interrupt("storm", t(12, 45), "chief")
            .expect("again")
    );
    assert!(
        !store
            .end_interrupt("nope", t(12, 45), "chief")
            .expect("unknown")
    );
    // Cancelled before it starts: never active.
    assert!(
        store
            .end_interrupt("later", t(14, 0), "chief")
            .expect("cancel")
    );
    assert!(ids(t(14, 0)).is_empty());
    let actions: Vec<String> = store
        .audit(t(0, 0), t(23, 0), None)
        .expect("audit")
        .into_iter()
        .filter(|r| matches!(r.kind, AuditKind::Action(Action::InterruptEnded)))
        .map(|r| {
            format!(
                "{} by {}",
                r.item.unwrap_or_default(),
                r.by.unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(actions, ["storm by chief", "later by chief"]);
}

#[test]
fn a_stored_interrupt_maps_its_targets_to_the_models_displays() {
    let fixture = crate::config::validate::check(
        crate::config::SiteSources {
            site: Some(crate::config::SourceFile {
                name: "gongkai.yaml".to_owned(),
                text: "\
site: 测试县
timezone: Asia/Shanghai
displays:
  - id: square
    profile: board
    link: { serial: /dev/ttyUSB0, baud: 9600, address: 1 }
  - id: town
    profile: board
    link: { serial: /dev/ttyUSB1, baud: 9600, address: 1 }
    groups: [hall]
  - id: window
    profile: board
    link: { serial: /dev/ttyUSB2, baud: 9600, address: 1 }
    groups: [hall]
"
                .to_owned(),
            }),
            profiles: vec![crate::config::SourceFile {
                name: "hw-profiles/board.yaml".to_owned(),
                text: "width: 128\nheight: 32\npixel: mono\nfont: wqy16\nprotocol: gongkai\nserial: { bauds: [9600], buffer: 1024 }\n".to_owned(),
            }],
            playlists: Vec::new(),
            fonts: Vec::new(),
        },
        crate::diag::Report::default(),
    );
    let model = fixture.model.expect("valid site");
    let town = interrupt("storm", &["town", "gone"], t(11, 0), t(13, 0))
        .for_model(&model)
        .expect("town is still there");
    assert_eq!(town.displays, [1]);
    assert_eq!(town.start.to_rfc3339(), "2026-12-01T19:00:00+08:00");
    let all = interrupt("all", &[], t(11, 0), t(13, 0))
        .for_model(&model)
        .expect("every display");
    assert!(all.displays.is_empty());
    // Groups are resolved against the site in force, and a display named twice counts once.
    let hall = interrupt("hall", &["hall", "town", "square"], t(11, 0), t(13, 0))
        .for_model(&model)
        .expect("a group");
    assert_eq!(hall.displays, [0, 1, 2]);
    // Only removed displays: it must not turn into "every display".
    assert_eq!(
        interrupt("gone", &["gone"], t(11, 0), t(13, 0)).for_model(&model),
        None
    );
}

#[test]
fn a_store_is_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    let (_dir, path) = temp();
    let store = std::sync::Arc::new(Store::open(&path).expect("open"));
    let handles: Vec<_> = ["square", "town", "window-03"]
        .into_iter()
        .map(|display| {
            let store = store.clone();
            std::thread::spawn(move || {
                for minute in 0..20 {
                    store
                        .slot_started(&slot(
                            display,
                            SlotKind::Item,
                            "x",
                            t(19, minute),
                            t(19, minute + 1),
                        ))
                        .expect("start");
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("thread");
    }
    let rows = store.audit(t(19, 0), t(20, 0), None).expect("audit");
    assert_eq!(rows.len(), 60);
    assert_eq!(
        rows.iter().filter(|r| r.to_planned).count(),
        3,
        "one open per display"
    );
}

/// The R*Tree only narrows the search (it holds rounded floats); the answer must be exactly
/// the brute-force one, at millisecond boundaries too.
#[test]
fn overlap_queries_match_a_brute_force_scan_to_the_millisecond() {
    let (_dir, path) = temp();
    let store = Store::open(&path).expect("open");
    let base = t(0, 0).timestamp_millis();
    // A small deterministic generator (xorshift), so a failure can be replayed.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |bound: i64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as i64
    };
    let mut spans = Vec::new();
    {
        let mut conn = store.lock();
        // One transaction: 3,000 commits would be 3,000 fsyncs with synchronous=FULL.
        let conn = conn.transaction().expect("transaction");
        for n in 0..3000 {
            let start = base + next(86_400_000);
            let length = [0, 1, 999, 30_000, 600_000, 7_200_000][n % 6] + next(1000);
            let planned = start + length;
            // A third are still open; the others ended early, on time or late.
            let ended = match n % 3 {
                0 => None,
                1 => Some(start + next(length + 1)),
                _ => Some(planned + next(5000)),
            };
            conn.execute(
                "INSERT INTO shown (display, kind, item, title, started_ms, planned_until_ms,
                                    ended_ms)
                 VALUES (?1, 'item', ?2, '', ?3, ?4, ?5)",
                params![format!("d{}", n % 7), n.to_string(), start, planned, ended],
            )
            .expect("insert");
            spans.push((n.to_string(), start, ended.unwrap_or(planned)));
        }
        conn.commit().expect("commit");
    }
    for _ in 0..300 {
        let from = base + next(86_400_000);
        let to = from + 1 + [0, 1, 500, 60_000, 3_600_000][next(5) as usize];
        let mut want: Vec<String> = spans
            .iter()
            .filter(|(_, start, end)| *start < to && *end > from)
            .map(|(id, _, _)| id.clone())
            .collect();
        let mut got: Vec<String> = store
            .audit(instant(from).expect("from"), instant(to).expect("to"), None)
            .expect("audit")
            .into_iter()
            .filter_map(|r| r.item)
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "range {from}..{to}");
    }
    let plan: Vec<String> = {
        let conn = store.lock();
        let mut explain = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT s.id FROM shown_span AS r JOIN shown AS s ON s.id = r.id
                 WHERE r.start_ms < 2 AND r.end_ms > 1",
            )
            .expect("explain");
        explain
            .query_map([], |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert!(
        plan.iter().any(|step| step.contains("VIRTUAL TABLE INDEX")),
        "{plan:?}"
    );
}
