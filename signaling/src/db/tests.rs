//! Tests of the data layer on an in-memory database.

use super::*;

/// A small region written straight through `Tx` (import has its own tests).
fn region() -> (Db, Ids) {
    let db = Db::open_in_memory().unwrap();
    let ids = db
        .write(|tx| {
            tx.set_county("测试区", "CS")?;
            let t1 = tx.upsert_town("甲镇", false)?.id();
            let t2 = tx.upsert_town("乙镇", true)?.id();
            let v1 = tx.upsert_village(t1, "一村", VillageKind::Village)?.id();
            let v2 = tx.upsert_village(t1, "二社区", VillageKind::Community)?.id();
            let v3 = tx.upsert_village(t2, "三村", VillageKind::Village)?.id();
            let w_zh = tx.upsert_window(t1, "综合窗口", WindowKind::Comprehensive, false)?.id();
            let w_mz = tx.upsert_window(t1, "民政窗口", WindowKind::CivilAffairs, false)?.id();
            let w2 = tx.upsert_window(t2, "综合窗口", WindowKind::Comprehensive, false)?.id();
            let papers = vec!["身份证".to_string(), "户口本".to_string()];
            let m = |code, name, plain, kind, kw| MatterFields {
                code,
                name,
                plain_name: plain,
                department: "区民政局",
                window_kind: kind,
                required_papers: &papers,
                needs_signoff: false,
                village_can_finish: false,
                keywords: kw,
            };
            let m_old = tx
                .upsert_matter(&m("MZ-1", "老年人优待证办理", "老年优待证", WindowKind::CivilAffairs, "老人 优待"))?
                .id();
            let m_house = tx
                .upsert_matter(&m(
                    "ZJ-1",
                    "农村建房审批",
                    "我要修房子",
                    WindowKind::Comprehensive,
                    "建房 宅基地 House",
                ))?
                .id();
            let m_orphan =
                tx.upsert_matter(&m("SB-1", "社保卡补换", "社保卡补办", WindowKind::SocialSecurity, "社保卡"))?.id();
            tx.set_window_matters(w_zh, &[m_house])?;
            tx.set_window_matters(w_mz, &[m_old])?;
            let k1 = tx.upsert_kiosk(v1, "一村便民服务室", "aa")?.id();
            let k3 = tx.upsert_kiosk(v3, "三村便民服务室", "bb")?.id();
            let hash = "x";
            let user = |username, role, town_id, window_id| UserFields {
                username,
                display_name: "某人",
                role,
                town_id,
                window_id,
                password_hash: hash,
            };
            let a1 = tx.upsert_user(&user("a1", Role::Approver, Some(t1), Some(w_mz)))?.id();
            let d1 = tx.upsert_user(&user("d1", Role::Dispatcher, Some(t1), None))?.id();
            let c1 = tx.upsert_user(&user("c1", Role::Chief, Some(t1), Some(w_zh)))?.id();
            let s = tx.upsert_user(&user("s", Role::Supervisor, None, None))?.id();
            Ok(Ids { t1, t2, v1, v2, v3, w_zh, w_mz, w2, m_old, m_house, m_orphan, k1, k3, a1, d1, c1, s })
        })
        .unwrap();
    (db, ids)
}

#[allow(dead_code)]
struct Ids {
    t1: i64,
    t2: i64,
    v1: i64,
    v2: i64,
    v3: i64,
    w_zh: i64,
    w_mz: i64,
    w2: i64,
    m_old: i64,
    m_house: i64,
    m_orphan: i64,
    k1: i64,
    k3: i64,
    a1: i64,
    d1: i64,
    c1: i64,
    s: i64,
}

#[test]
fn migrations_are_idempotent_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/cunneng.db");
    {
        let db = Db::open(&path).unwrap();
        let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(db.schema_versions().unwrap(), all);
        db.write(|tx| tx.upsert_town("甲镇", false)).unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_versions().unwrap(), MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
    assert_eq!(db.counts().unwrap().towns, 1);
    let mode: String = db.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = db.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn a_committed_row_is_synced_to_disk() {
    // synchronous = FULL (2): with WAL, NORMAL (1) can lose the last commits on a power loss,
    // and a paper's row is acknowledged to the user once committed.
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("cunneng.db")).unwrap();
    let level: i64 = db.conn().query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
    assert_eq!(level, 2, "PRAGMA synchronous is FULL");
}

#[test]
fn an_older_database_with_data_is_migrated_and_keeps_its_references() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // A database of the previous release: migrations 1 to 3, with a town, a supervisor
        // and a session of an approver.
        let mut c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL); PRAGMA foreign_keys = ON;").unwrap();
        for &(v, name, sql) in &MIGRATIONS[..3] {
            let tx = c.transaction().unwrap();
            tx.execute_batch(sql).unwrap();
            tx.execute("INSERT INTO schema_migrations VALUES (?1, ?2, 0)", params![v, name]).unwrap();
            tx.commit().unwrap();
        }
        c.execute_batch(
            "INSERT INTO towns (id, name, any_window) VALUES (1, '甲镇', 0);
             INSERT INTO windows (id, town_id, name, kind) VALUES (1, 1, '民政窗口', 'civil_affairs');
             INSERT INTO users (id, username, display_name, role, town_id, window_id, password_hash)
                 VALUES (1, 'a', '某人', 'approver', 1, 1, 'x'), (2, 's', '督查', 'supervisor', NULL, NULL, 'x');
             INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) VALUES ('h', 1, 0, 100);",
        )
        .unwrap();
    }
    let db = Db::open(&path).unwrap();
    assert_eq!(db.schema_versions().unwrap(), MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
    assert!(db.session_by_token_hash("h").unwrap().is_some());
    assert_eq!(db.user(2).unwrap().unwrap().role, Role::Supervisor);
    // A supervisor may now be limited to a town; an admin still may not.
    db.write(|tx| {
        tx.upsert_user(&UserFields {
            username: "ts",
            display_name: "镇督查",
            role: Role::Supervisor,
            town_id: Some(1),
            window_id: None,
            password_hash: "x",
        })
    })
    .unwrap();
    let admin_in_town = db.write(|tx| {
        tx.upsert_user(&UserFields {
            username: "ad",
            display_name: "管理员",
            role: Role::Admin,
            town_id: Some(1),
            window_id: None,
            password_hash: "x",
        })
    });
    assert!(admin_in_town.is_err());
    // Foreign keys are on again: a session of no user is refused.
    assert!(db.insert_session("h2", 999, 0, 1).is_err());
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    drop(Db::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", []).unwrap();
    }
    let e = Db::open(&path).unwrap_err();
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn db_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Db>();
}

#[test]
fn region_queries() {
    let (db, ids) = region();
    let v = db.villages_of_town(ids.t1).unwrap();
    assert_eq!(v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["一村", "二社区"]);
    assert_eq!(v[1].kind, VillageKind::Community);
    let w = db.windows_of_town(ids.t1).unwrap();
    assert_eq!(w.len(), 2);
    assert_eq!(w[1].kind, WindowKind::CivilAffairs);
    assert_eq!(db.kiosks_of_village(ids.v1).unwrap()[0].name, "一村便民服务室");
    assert!(db.kiosks_of_village(ids.v2).unwrap().is_empty());
    assert_eq!(db.county().unwrap().unwrap().code, "CS");
    assert!(db.town(ids.t2).unwrap().unwrap().any_window);
    assert_eq!(db.window(ids.w2).unwrap().unwrap().town_id, ids.t2);
    assert_eq!(db.village(ids.v3).unwrap().unwrap().town_id, ids.t2);
    assert_eq!(db.user(ids.a1).unwrap().unwrap().role, Role::Approver);
}

#[test]
fn matters_for_town_picks_windows_and_searches() {
    let (db, ids) = region();
    let all = db.matters_for_town(Some(ids.t1), None).unwrap();
    // The social-security matter has no window in 甲镇.
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [ids.m_old, ids.m_house]);
    assert_eq!(all[0].window.as_ref().unwrap().id, ids.w_mz);
    assert_eq!(all[1].window.as_ref().unwrap().id, ids.w_zh);
    assert_eq!(all[0].required_papers, ["身份证", "户口本"]);

    // 乙镇 takes anything at any window: all three, at its one window.
    let any = db.matters_for_town(Some(ids.t2), None).unwrap();
    assert_eq!(any.len(), 3);
    assert!(any.iter().all(|m| m.window.as_ref().unwrap().id == ids.w2));

    let q = |q: &str| db.matters_for_town(Some(ids.t1), Some(q)).unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(q("修房子"), [ids.m_house]);
    assert_eq!(q("我要修房子"), [ids.m_house]);
    assert_eq!(q("宅基地"), [ids.m_house]); // keyword
    assert_eq!(q("house"), [ids.m_house]); // ASCII case-insensitive
    assert_eq!(q("优待"), [ids.m_old]);
    assert_eq!(q("民政"), [ids.m_old, ids.m_house]); // department
    assert_eq!(q("老年 优待证"), [ids.m_old]);
    assert!(q("老年 房子").is_empty()); // all words must match
    assert!(q("社保卡").is_empty()); // not served in this town
    assert_eq!(q("  "), [ids.m_old, ids.m_house]);
    assert_eq!(q("100%_'\""), Vec::<i64>::new()); // no injection, no wildcard

    let county = db.matters_all(Some("社保卡")).unwrap();
    assert_eq!(county.len(), 1);
    assert!(county[0].window.is_none());
    assert_eq!(db.matters_all(None).unwrap().len(), 3);
    assert_eq!(db.matter(ids.m_orphan).unwrap().unwrap().code, "SB-1");
    assert!(db.matter_for_town(ids.t1, ids.m_orphan).unwrap().is_none());
    assert_eq!(db.matter_for_town(ids.t2, ids.m_orphan).unwrap().unwrap().window.unwrap().id, ids.w2);
}

#[test]
fn me_of_kiosk_and_staff() {
    let (db, ids) = region();
    let me = db.me_of_kiosk(ids.k1).unwrap();
    assert_eq!(me.kind, "kiosk");
    assert_eq!(me.role, "kiosk");
    assert_eq!(me.village.unwrap().name, "一村");
    assert_eq!(me.town.unwrap().name, "甲镇");
    assert!(me.window.is_none());

    let me = db.me_of_user(ids.a1).unwrap();
    assert_eq!((me.role, me.town.unwrap().id, me.window.unwrap().name.as_str()), ("approver", ids.t1, "民政窗口"));
    let me = db.me_of_user(ids.s).unwrap();
    assert_eq!(me.role, "supervisor");
    assert!(me.town.is_none() && me.window.is_none() && me.village.is_none());
    assert!(matches!(db.me_of_user(9999), Err(DataError::NotFound(_))));
    assert!(matches!(db.me_of_kiosk(9999), Err(DataError::NotFound(_))));
}

#[test]
fn rows_serialize_to_protocol_shapes() {
    let (db, ids) = region();
    let me = serde_json::to_value(db.me_of_kiosk(ids.k1).unwrap()).unwrap();
    assert_eq!(
        me,
        serde_json::json!({"kind": "kiosk", "id": ids.k1, "name": "一村便民服务室", "role": "kiosk",
            "town": {"id": ids.t1, "name": "甲镇"}, "village": {"id": ids.v1, "name": "一村"},
            "window": null})
    );
    let me = serde_json::to_value(db.me_of_user(ids.a1).unwrap()).unwrap();
    assert_eq!(me["kind"], "staff");
    assert_eq!(me["role"], "approver");
    assert_eq!(me["window"]["name"], "民政窗口");
    assert_eq!(me["village"], serde_json::Value::Null);

    let m = serde_json::to_value(&db.matters_for_town(Some(ids.t1), Some("优待")).unwrap()[0]).unwrap();
    for key in ["id", "name", "plain_name", "department", "required_papers", "needs_signoff", "village_can_finish"] {
        assert!(m.get(key).is_some(), "{key}");
    }
    assert_eq!(m["window"], serde_json::json!({"id": ids.w_mz, "name": "民政窗口"}));
    let w = serde_json::to_value(&db.windows_of_town(ids.t1).unwrap()[1]).unwrap();
    assert_eq!((w["name"].as_str(), w["kind"].as_str()), (Some("民政窗口"), Some("civil_affairs")));
    let v = serde_json::to_value(&db.villages_of_town(ids.t1).unwrap()[0]).unwrap();
    assert_eq!((v["id"].as_i64(), v["name"].as_str()), (Some(ids.v1), Some("一村")));
    // County-wide catalog: window is null.
    let all = serde_json::to_value(db.matters_for_town(None, None).unwrap()).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(all[0]["window"], serde_json::Value::Null);
}

#[test]
fn topology_dump() {
    let (db, ids) = region();
    let t = db.topology().unwrap();
    assert_eq!(t.towns.len(), 2);
    assert!(t.towns.iter().any(|t| t.id == ids.t2 && t.any_window));
    assert_eq!(t.villages.len(), 3);
    let mz = t.windows.iter().find(|w| w.id == ids.w_mz).unwrap();
    assert_eq!((mz.town_id, mz.accepts.clone()), (ids.t1, vec![ids.m_old]));
    assert!(t.windows.iter().find(|w| w.id == ids.w2).unwrap().accepts.is_empty());
    assert_eq!(t.matters.len(), 3);
    assert_eq!(t.kiosks.iter().find(|k| k.id == ids.k3).unwrap().town_id, ids.t2);
    assert_eq!(t.approvers.len(), 1);
    assert_eq!((t.approvers[0].user_id, t.approvers[0].window_id), (ids.a1, Some(ids.w_mz)));
    assert_eq!(t.dispatchers[0].user_id, ids.d1);
    assert_eq!(t.chiefs[0].user_id, ids.c1);
}

#[test]
fn cases_are_numbered_per_day_in_china_time() {
    let (db, ids) = region();
    // 2026-11-22 00:30 in China = 2026-11-21 16:30 UTC.
    let t0 = 1_795_278_600_000;
    assert_eq!(china_date(t0), "20261122");
    assert_eq!(china_date(0), "19700101");
    assert_eq!(china_date(16 * 3_600_000), "19700102");
    let c1 = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0).unwrap();
    let c2 = db.create_case(ids.m_house, ids.v1, None, t0 + 1000).unwrap();
    let c3 = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0 + 86_400_000).unwrap();
    assert_eq!(c1.case_no, "CS-20261122-0001");
    assert_eq!(c2.case_no, "CS-20261122-0002");
    assert_eq!(c3.case_no, "CS-20261123-0001");
    assert_eq!(db.case(c2.id).unwrap().unwrap(), c2);
    assert!(matches!(db.create_case(999, ids.v1, None, t0), Err(DataError::NotFound(m)) if m == "matter 999"));
    assert!(matches!(db.create_case(ids.m_old, 999, None, t0), Err(DataError::NotFound(_))));
    assert!(matches!(db.create_case(ids.m_old, ids.v1, Some(999), t0), Err(DataError::NotFound(_))));
}

#[test]
fn call_records() {
    let (db, ids) = region();
    let case = db.create_case(ids.m_old, ids.v1, Some(ids.k1), 1000).unwrap();
    let call = db.record_call_requested(case.id, ids.w_mz, ids.k1, 1000).unwrap();
    db.record_call_answered(call, ids.a1, 2000).unwrap();
    assert!(matches!(db.record_call_answered(call, ids.a1, 2500), Err(DataError::Conflict(_))));
    let leg2 = db.record_call_transferred(call, ids.w_zh, 3000).unwrap();
    let old = db.call(call).unwrap().unwrap();
    assert_eq!((old.ended_at_ms, old.end_reason.as_deref()), (Some(3000), Some("transferred")));
    let new = db.call(leg2).unwrap().unwrap();
    assert_eq!((new.case_id, new.window_id, new.transferred_from_id), (case.id, ids.w_zh, Some(call)));
    assert!(new.staff_id.is_none() && new.answered_at_ms.is_none());
    db.record_call_ended(leg2, "hangup", 4000).unwrap();
    db.record_call_ended(leg2, "server", 5000).unwrap(); // no-op
    assert_eq!(db.call(leg2).unwrap().unwrap().end_reason.as_deref(), Some("hangup"));
    assert!(matches!(db.record_call_ended(999, "hangup", 1), Err(DataError::NotFound(_))));
    assert!(matches!(db.record_call_transferred(call, ids.w_zh, 1), Err(DataError::Conflict(_))));
    assert!(matches!(db.record_call_requested(case.id, 999, ids.k1, 1), Err(DataError::NotFound(_))));
    assert!(matches!(db.record_call_answered(999, ids.a1, 1), Err(DataError::NotFound(_))));
}

/// The ring time is the leg's latest ring before its answer: a ring after the answer (or of an
/// ended leg) changes nothing.
#[test]
fn a_leg_keeps_its_latest_ring_before_the_answer() {
    let (db, ids) = region();
    let case = db.create_case(ids.m_old, ids.v1, Some(ids.k1), 1000).unwrap();
    let call = db.record_call_requested(case.id, ids.w_mz, ids.k1, 1000).unwrap();
    assert_eq!(db.call(call).unwrap().unwrap().rang_at_ms, None);
    db.record_call_rang(call, 1500).unwrap();
    db.record_call_rang(call, 31_500).unwrap(); // the first approver did not answer: the next one
    db.record_call_answered(call, ids.a1, 40_000).unwrap();
    db.record_call_rang(call, 50_000).unwrap();
    assert_eq!(db.call(call).unwrap().unwrap().rang_at_ms, Some(31_500));
    let ended = db.record_call_requested(case.id, ids.w_mz, ids.k1, 60_000).unwrap();
    db.record_call_ended(ended, "cancelled", 61_000).unwrap();
    db.record_call_rang(ended, 62_000).unwrap();
    assert_eq!(db.call(ended).unwrap().unwrap().rang_at_ms, None);
    assert!(matches!(db.record_call_rang(999, 1), Err(DataError::NotFound(_))));
}

/// The statistics' facts fold a transfer chain into the call it continues: the chain's first
/// answer counts, with the ring of the leg that answer came from; the last leg gives the end.
#[test]
fn stats_facts_fold_transfers_with_the_ring_of_the_answered_leg() {
    use crate::case::stats::CallEnd;
    let (db, ids) = region();
    let t0 = 1_796_054_400_000; // 2026-12-01 00:00 China time
    let case = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0).unwrap();
    // Rung twice, unanswered, transferred (an unanswered transfer), rung and answered there,
    // transferred again and answered at the third window.
    let leg1 = db.record_call_requested(case.id, ids.w_mz, ids.k1, t0 + 1000).unwrap();
    db.record_call_rang(leg1, t0 + 2000).unwrap();
    db.record_call_rang(leg1, t0 + 32_000).unwrap();
    let leg2 = db.record_call_transferred(leg1, ids.w_zh, t0 + 40_000).unwrap();
    db.record_call_rang(leg2, t0 + 41_000).unwrap();
    db.record_call_answered(leg2, ids.a1, t0 + 45_000).unwrap();
    let leg3 = db.record_call_transferred(leg2, ids.w_mz, t0 + 100_000).unwrap();
    db.record_call_rang(leg3, t0 + 101_000).unwrap();
    db.record_call_answered(leg3, ids.a1, t0 + 103_000).unwrap();
    db.record_call_ended(leg3, "hangup", t0 + 200_000).unwrap();
    // Another case: rung, then cancelled while ringing.
    let other = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0 + 5000).unwrap();
    let leg = db.record_call_requested(other.id, ids.w_mz, ids.k1, t0 + 5000).unwrap();
    db.record_call_rang(leg, t0 + 6000).unwrap();
    db.record_call_ended(leg, "cancelled", t0 + 9000).unwrap();

    let facts = db.stats_facts(None, t0, t0 + 86_400_000).unwrap();
    assert_eq!(facts.cases.len(), 2);
    let mut calls = facts.calls.clone();
    calls.sort_by_key(|c| c.case_id);
    let got: Vec<_> = calls
        .iter()
        .map(|c| {
            (
                c.case_id,
                c.requested_at_ms - t0,
                c.rang_at_ms.map(|r| r - t0),
                c.answered_at_ms.map(|a| a - t0),
                c.ended_at_ms.map(|e| e - t0),
                c.end,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (case.id, 1000, Some(41_000), Some(45_000), Some(200_000), CallEnd::AfterAnswer),
            (other.id, 5000, Some(6000), None, Some(9000), CallEnd::Cancelled),
        ]
    );
    assert_eq!(calls[0].window.0, ids.w_zh, "the window that answered it");
}

/// The statistics read a range of cases and their calls from covering indexes alone (never
/// the table rows).
#[test]
fn the_statistics_read_cases_and_calls_from_their_covering_indexes() {
    let (db, _) = region();
    let conn = db.conn();
    for (sql, args, index) in [
        (super::stats::CASES_SQL, vec![0, 1, -1], "COVERING INDEX cases_stats"),
        (super::stats::CALLS_SQL, vec![0, 1], "COVERING INDEX calls_stats"),
    ] {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan: Vec<String> =
            st.query_map(rusqlite::params_from_iter(args), |r| r.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(plan.iter().any(|p| p.contains(index)), "{plan:?}");
    }
}

#[test]
fn queue_state_roundtrip() {
    let (db, _) = region();
    assert_eq!(db.load_queue_state().unwrap(), None);
    db.save_queue_state(r#"{"a":1}"#, 10).unwrap();
    db.save_queue_state(r#"{"a":2}"#, 20).unwrap();
    assert_eq!(db.load_queue_state().unwrap(), Some((r#"{"a":2}"#.to_string(), 20)));
}

#[test]
fn sessions_store() {
    let (db, ids) = region();
    db.insert_session("h1", ids.a1, 0, 100).unwrap();
    db.insert_session("h2", ids.a1, 0, 200).unwrap();
    assert!(db.session_by_token_hash("h1").unwrap().is_some());
    assert_eq!(db.delete_expired_sessions(100).unwrap(), 1);
    assert!(db.session_by_token_hash("h1").unwrap().is_none());
    assert!(db.delete_session("h2").unwrap());
    assert!(!db.delete_session("h2").unwrap());
}

#[test]
fn write_rolls_back_on_error() {
    let (db, _) = region();
    let before = db.counts().unwrap();
    let r: Result<(), DataError> = db.write(|tx| {
        tx.upsert_town("丙镇", false)?;
        Err(DataError::Invalid("stop".into()))
    });
    assert!(r.is_err());
    assert_eq!(db.counts().unwrap(), before);
}

#[test]
fn search_terms_parse() {
    assert_eq!(region::search_terms(Some("我要修房子")), ["修房子"]);
    assert_eq!(region::search_terms(Some("我要")), ["我要"]);
    assert_eq!(region::search_terms(Some("低保，残疾 ABC")), ["低保", "残疾", "abc"]);
    assert!(region::search_terms(None).is_empty());
}

// --- cases, papers, ratings, inbox, bookings ---

mod cases {
    use super::super::{Db, UserFields, VillageKind, WindowKind};
    use super::*;
    use crate::case::{
        Actor, CallFacts, CaseEvent, CaseScope, CaseState, Command, EventActor, Outcome, PaperKind, Rating,
        SignoffDecision, Status,
    };
    use crate::identity::Role;

    struct Ids {
        v1: i64,
        k1: i64,
        w: i64,
        m: i64,
        a: i64,
        c: i64,
    }

    fn region() -> (Db, Ids) {
        let db = Db::open_in_memory().unwrap();
        let ids = db
            .write(|tx| {
                tx.set_county("测试县", "CS")?;
                let t = tx.upsert_town("甲镇", false)?.id();
                let v1 = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
                let w = tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?.id();
                let m = tx
                    .upsert_matter(&super::super::MatterFields {
                        code: "MZ-1",
                        name: "低保",
                        plain_name: "申请低保",
                        department: "",
                        window_kind: WindowKind::CivilAffairs,
                        required_papers: &["身份证".to_string()],
                        needs_signoff: true,
                        village_can_finish: false,
                        keywords: "",
                    })?
                    .id();
                let k1 = tx.upsert_kiosk(v1, "一村便民服务室", "h1")?.id();
                let user = |username, role, window| UserFields {
                    username,
                    display_name: "某人",
                    role,
                    town_id: Some(t),
                    window_id: window,
                    password_hash: "x",
                };
                let a = tx.upsert_user(&user("a", Role::Approver, Some(w)))?.id();
                let c = tx.upsert_user(&user("c", Role::Chief, None))?.id();
                Ok(Ids { v1, k1, w, m, a, c })
            })
            .unwrap();
        (db, ids)
    }

    fn ev(event: CaseEvent) -> NewEvent {
        NewEvent { at_ms: 5, actor: EventActor::system(), event }
    }

    /// Apply a lifecycle command to the stored case and commit it.
    fn step(
        db: &Db,
        case_id: i64,
        actor: Actor,
        cmd: Command,
        from_state: Option<&CaseState>,
    ) -> Result<(), DataError> {
        let rec = db.case(case_id).unwrap().unwrap();
        let state = from_state.cloned().unwrap_or(rec.state.clone());
        let t = crate::case::apply(&state, actor, cmd, 10).unwrap();
        db.commit_transition(case_id, state.status, &t, &EventActor::system(), 10, None).map(drop)
    }

    #[test]
    fn decide_signoff_and_conflicts() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        let rec = db.case_by_no(&case.case_no).unwrap().unwrap();
        assert_eq!((rec.status(), rec.state.needs_signoff, rec.required_papers.len()), (Status::Open, true, 1));
        let calls = CallFacts { live_approver: Some(ids.a), last_answerer: None };
        let refuse = || Command::Decide {
            outcome: Outcome::Refused,
            note: "不符合条件".into(),
            missing_items: vec![],
            result_paper: None,
            calls,
            villager: true,
        };
        let open = rec.state.clone();
        step(&db, case.id, Actor::Approver(ids.a), refuse(), None).unwrap();
        assert_eq!(db.case(case.id).unwrap().unwrap().status(), Status::Signoff);
        // A second decision from `open` lost the race.
        assert!(matches!(
            step(&db, case.id, Actor::Approver(ids.a), refuse(), Some(&open)),
            Err(DataError::Conflict(_))
        ));
        let back = Command::SignOff { decision: SignoffDecision::Returned, reason: Some("再核实".into()) };
        step(&db, case.id, Actor::Chief(ids.c), back, None).unwrap();
        assert_eq!(db.case(case.id).unwrap().unwrap().status(), Status::Returned);
        // A sign-off that thinks the case still waits: conflict, nothing written.
        let waiting = CaseState { status: Status::Signoff, ..db.case(case.id).unwrap().unwrap().state };
        let approve = || Command::SignOff { decision: SignoffDecision::Approved, reason: None };
        assert!(matches!(
            step(&db, case.id, Actor::Chief(ids.c), approve(), Some(&waiting)),
            Err(DataError::Conflict(_))
        ));
        step(&db, case.id, Actor::Approver(ids.a), refuse(), None).unwrap();
        step(&db, case.id, Actor::Chief(ids.c), approve(), None).unwrap();
        let rec = db.case(case.id).unwrap().unwrap();
        assert!(rec.is_final());
        assert_eq!(rec.status(), Status::Refused);
        assert_eq!(rec.state.signoff.as_ref().unwrap().decision, SignoffDecision::Approved);
        assert_eq!(rec.state.decision.as_ref().unwrap().by, ids.a);
        assert_eq!(rec.decided_by_name.as_deref(), Some("某人"));
        // decided, returned, decided, approved + the final outcome.
        assert_eq!(db.case_events(case.id).unwrap().len(), 5);
        // Closed: the villager can no longer change.
        assert!(matches!(
            db.set_villager(
                case.id,
                "张三",
                "13800001234",
                None,
                None,
                &ev(CaseEvent::VillagerSet { id_number: false })
            ),
            Err(DataError::Conflict(_))
        ));
        let town = db.cases_in_scope(CaseScope::Town(rec.town_id), Some(&[Status::Refused]), 10, false).unwrap();
        assert_eq!(town.len(), 1);
        assert!(db.cases_in_scope(CaseScope::Village(ids.v1), Some(&[Status::Open]), 10, false).unwrap().is_empty());
        assert_eq!(db.staff_of_town(rec.town_id, Role::Chief).unwrap(), vec![ids.c]);
        // A transition with an inbox delivery writes the item with it.
        let item = {
            let c2 = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
            let t = crate::case::apply(&c2.state, Actor::Approver(ids.a), refuse(), 10).unwrap();
            db.commit_transition(c2.id, Status::Open, &t, &EventActor::system(), 10, Some(ids.v1)).unwrap().unwrap()
        };
        assert_eq!(db.inbox_of_village(ids.v1, true, 10).unwrap()[0].id, item.id);
    }

    #[test]
    fn uploads_advance_only_at_their_offset() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        let u = UploadRow {
            id: "u1".into(),
            case_id: case.id,
            kind: PaperKind::Scan,
            name: "a.pdf".into(),
            checklist_item: None,
            size: 10,
            received: 0,
            chunks: 0,
            content_type: None,
            by: EventActor::kiosk(ids.k1, "k"),
            created_at_ms: 1,
            updated_at_ms: 1,
            paper_id: None,
        };
        db.create_upload(&u, 1).unwrap();
        assert!(matches!(
            db.create_upload(&UploadRow { id: "u2".into(), ..u.clone() }, 1),
            Err(DataError::Conflict(_))
        ));
        db.upload_chunk_stored("u1", 0, 6, Some("application/pdf"), 2).unwrap();
        assert!(matches!(db.upload_chunk_stored("u1", 0, 4, None, 3), Err(DataError::Conflict(_))));
        assert!(matches!(db.upload_chunk_stored("u1", 6, 5, None, 3), Err(DataError::Conflict(_)))); // past size
        db.upload_chunk_stored("u1", 6, 4, None, 3).unwrap();
        let row = db.upload("u1").unwrap().unwrap();
        assert_eq!((row.received, row.chunks, row.content_type.as_deref()), (10, 2, Some("application/pdf")));
        let paper = PaperRow {
            id: 0,
            case_id: case.id,
            kind: PaperKind::Scan,
            name: "a.pdf".into(),
            checklist_item: None,
            content_type: "application/pdf".into(),
            size: 10,
            sha256: "00".into(),
            object_key: "papers/1/x".into(),
            by: EventActor::kiosk(ids.k1, "k"),
            created_at_ms: 4,
            removed_at_ms: None,
        };
        let pid = db.complete_upload("u1", &paper, &EventActor::kiosk(ids.k1, "k")).unwrap();
        assert!(matches!(
            db.complete_upload("u1", &paper, &EventActor::kiosk(ids.k1, "k")),
            Err(DataError::Conflict(_))
        ));
        assert_eq!(db.upload("u1").unwrap().unwrap().paper_id, Some(pid));
        assert_eq!(db.papers_of_case(case.id).unwrap().len(), 1);
        assert_eq!(db.case_events(case.id).unwrap()[0].detail["paper_id"], pid);
        assert_eq!(db.uploads_idle_since(5).unwrap().len(), 1);
        db.delete_upload("u1").unwrap();
        assert!(db.upload("u1").unwrap().is_none());

        // Corrections: conditional on the case's status, never on a removed paper.
        let kiosk = EventActor::kiosk(ids.k1, "k");
        let retag = PaperChange::Retag(Some("户口本".into()));
        let at = |event| [NewEvent { at_ms: 5, actor: kiosk.clone(), event }];
        let retagged = at(CaseEvent::PaperRetagged { paper_id: pid, from: None, to: Some("户口本".into()) });
        assert!(matches!(
            db.change_paper(case.id, Status::Missing, pid, &retag, &retagged, 5),
            Err(DataError::Conflict(_))
        ));
        let p = db.change_paper(case.id, Status::Open, pid, &retag, &retagged, 5).unwrap();
        assert_eq!((p.checklist_item.as_deref(), p.removed_at_ms), (Some("户口本"), None));
        let removed = at(CaseEvent::PaperRemoved { paper_id: pid, checklist_item: Some("户口本".into()) });
        let p = db.change_paper(case.id, Status::Open, pid, &PaperChange::Remove, &removed, 6).unwrap();
        assert_eq!(p.removed_at_ms, Some(6));
        assert!(matches!(
            db.change_paper(case.id, Status::Open, pid, &PaperChange::Remove, &removed, 7),
            Err(DataError::Conflict(_))
        ));
        // Kept for the record, with both events on the timeline.
        assert_eq!(db.paper(pid).unwrap().unwrap().removed_at_ms, Some(6));
        let kinds: Vec<_> = db.case_events(case.id).unwrap().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                crate::case::EventKind::PaperAdded,
                crate::case::EventKind::PaperRetagged,
                crate::case::EventKind::PaperRemoved
            ]
        );
    }

    #[test]
    fn ratings_inbox_bookings() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        assert_eq!(db.last_answered_call(case.id).unwrap(), None);
        let call = db.record_call_requested(case.id, ids.w, ids.k1, 2).unwrap();
        db.record_call_answered(call, ids.a, 3).unwrap();
        assert_eq!(db.last_answered_call(case.id).unwrap(), Some((call, ids.a)));
        let rated = |r| ev(CaseEvent::RatingGiven { rating: r });
        db.add_rating(case.id, call, ids.k1, Rating::Good, None, &rated(Rating::Good)).unwrap();
        assert!(matches!(
            db.add_rating(case.id, call, ids.k1, Rating::Bad, None, &rated(Rating::Bad)),
            Err(DataError::Conflict(_))
        ));
        assert_eq!(db.rating_of_case(case.id).unwrap().unwrap().rating, Rating::Good);
        assert_eq!(db.current_case_of_kiosk(ids.k1, 0).unwrap().unwrap().id, case.id);

        let item = db.add_inbox_item(ids.v1, case.id, 5).unwrap();
        assert_eq!(db.inbox_of_village(ids.v1, true, 10).unwrap().len(), 1);
        db.mark_inbox_read(ids.v1, item, 6).unwrap();
        assert!(db.inbox_of_village(ids.v1, true, 10).unwrap().is_empty());
        assert_eq!(db.inbox_of_village(ids.v1, false, 10).unwrap()[0].read_at_ms, Some(6));
        assert!(matches!(db.mark_inbox_read(ids.v1 + 100, item, 6), Err(DataError::NotFound(_))));

        let b = db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 1000, 2000, None, 1).unwrap();
        assert!(matches!(
            db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 1000, 2000, None, 1),
            Err(DataError::Conflict(_))
        ));
        assert_eq!(db.booking_due(ids.v1, ids.m, 500, 600).unwrap(), Some(b));
        assert_eq!(db.booking_due(ids.v1, ids.m, 300, 600).unwrap(), None);
        assert_eq!(db.booking_due(ids.v1, ids.m, 2000, 600).unwrap(), None);
        assert_eq!(db.bookings_in_scope(BookingScope::Window(ids.w), 0, 5000, false).unwrap().len(), 1);
        db.booking_called(b, case.id).unwrap();
        assert_eq!(db.booking(b).unwrap().unwrap().case_no.as_deref(), Some(case.case_no.as_str()));
        assert!(matches!(db.cancel_booking(b, ids.v1, 0), Err(DataError::Conflict(_))));
        let b2 = db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 3000, 4000, None, 1).unwrap();
        db.cancel_booking(b2, ids.v1, 0).unwrap();
        // The slot is free again.
        db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 3000, 4000, None, 1).unwrap();
        assert!(matches!(db.cancel_booking(b2 + 10, ids.v1, 0), Err(DataError::NotFound(_))));
    }
}
