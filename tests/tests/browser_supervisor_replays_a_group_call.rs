//! Browser test: a group call (一对多) belongs to no case, yet a supervisor finds it and
//! replays it on `/review` (`tests/browser/review_group_call.mjs`): the town dispatcher calls
//! two villages of the town, one joins a few seconds after the other, the dispatcher ends the
//! call; the supervisor opens 群组通话, finds the call, plays its three sides in sync from one
//! button, jumps to the later village's join mark, and finds the opening and the viewing in
//! the access report; a supervisor of another town finds no such call and cannot open it.
//!
//! Then over HTTP, the same call's media and scope: ranges of a group call's recording match
//! its whole bytes; the town's chief sees it (read-only review), a chief and a supervisor of
//! another town do not (0 calls, 404 for the call and its media); approvers, dispatchers and
//! kiosks are refused (403), nobody logged in 401; bad ids and filters 400/404, and none of
//! these changes anything. Set `BROWSER_OUT=DIR` to keep the screenshots.

use std::process::Command;

use anyhow::{Context, bail};
use cunneng_tests::browser::{page_links, run_script};
use cunneng_tests::client::{Who, demo_kiosks, demo_staff, get_json, http, login, login_as, pairing};
use cunneng_tests::server::{Server, binary_path};
use serde_json::Value;

const OTHER_SUP: (&str, &str) = ("other-sup", "other-sup-pw-1");

/// `GET path` with `token`; the status and the body's bytes.
async fn fetch(
    server: &Server,
    path: &str,
    token: Option<&str>,
    range: Option<&str>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut req = http().get(format!("{}{path}", server.base_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.bytes().await?.to_vec()))
}

/// The number of access entries of the audit record, but the `recording.watched` ones (the
/// audit job writes those when a viewing has been idle a while, at any moment).
async fn accesses(server: &Server, supervisor: &str) -> anyhow::Result<usize> {
    let (status, rows) = get_json(server, "/api/review/access", Some(supervisor)).await?;
    assert_eq!(status, 200, "{rows}");
    Ok(rows.as_array().context("access rows")?.iter().filter(|r| r["action"] != "recording.watched").count())
}

#[tokio::test]
async fn browser_supervisor_finds_and_replays_a_group_call() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let links = page_links(&server, &p).await?;
    let town = p.approver.town_id();
    // A second kiosk of the same town, in another village.
    let kiosks = demo_kiosks(&server).await?;
    let second: &Who = kiosks
        .iter()
        .find(|k| k.town_id() == town && k.village_id() != p.kiosk.village_id())
        .context("a second village with a kiosk in the town")?;
    let second_link = server
        .links("kiosk")
        .into_iter()
        .find(|l| l.fragment_param("token").as_deref() == Some(second.token.as_str()))
        .context("the second kiosk's link")?
        .url
        .clone();

    // A supervisor limited to another town.
    let token = login_as(&server, "supervisor").await?;
    let (_, choices) = get_json(&server, "/api/review/choices", Some(&token)).await?;
    let other = choices["towns"]
        .as_array()
        .context("towns")?
        .iter()
        .find(|t| t["id"].as_i64() != Some(town))
        .context("a second town")?
        .clone();
    let file = server.data_dir().join("other-town-supervisor.toml");
    std::fs::write(
        &file,
        format!(
            "[[accounts]]\nusername = \"{}\"\ndisplay_name = \"邻镇纪委\"\nrole = \"supervisor\"\n\
             town = \"{}\"\npassword = \"{}\"\n",
            OTHER_SUP.0,
            other["name"].as_str().context("town name")?,
            OTHER_SUP.1
        ),
    )?;
    let out = Command::new(binary_path())
        .args(["import", file.to_str().unwrap(), "--data-dir", server.data_dir().to_str().unwrap()])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let other_url = format!("/login#user={}&password={}", OTHER_SUP.0, OTHER_SUP.1);
    run_script(
        &server,
        "review_group_call.mjs",
        &[
            ("--kiosk-url", &links.kiosk),
            ("--second-kiosk-url", &second_link),
            ("--dispatcher-url", &links.dispatcher),
            ("--supervisor-url", &server.link("supervisor").url),
            ("--other-town-url", &other_url),
        ],
    )
    .await?;

    // ---- the same call over HTTP -------------------------------------------------------
    let (status, page) = get_json(&server, "/api/review/group-calls", Some(&token)).await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 1, "{page}");
    let call = page["items"][0]["id"].as_str().context("call id")?.to_string();
    let (status, review) = get_json(&server, &format!("/api/review/group-calls/{call}"), Some(&token)).await?;
    assert_eq!(status, 200, "{review}");
    let recordings = review["recordings"].as_array().context("recordings")?;
    assert_eq!(recordings.len(), 3, "{review}");
    let rec = recordings.iter().find(|r| r["side"] == "village").context("a village recording")?;
    let media =
        rec["archive_url"].as_str().or_else(|| rec["segments"][0]["url"].as_str()).context("a media url")?.to_string();
    assert!(media.starts_with(&format!("/api/group-calls/{call}/recordings/")), "{media}");

    // Ranges: the whole, and two halves that add up to it.
    let (status, whole) = fetch(&server, &media, Some(&token), None).await?;
    assert_eq!(status, 200);
    assert!(whole.len() > 1000, "{} bytes", whole.len());
    let mid = whole.len() / 2;
    let (s1, first) = fetch(&server, &media, Some(&token), Some(&format!("bytes=0-{}", mid - 1))).await?;
    let (s2, rest) = fetch(&server, &media, Some(&token), Some(&format!("bytes={mid}-"))).await?;
    assert_eq!((s1, s2), (206, 206));
    assert_eq!([first, rest].concat(), whole, "the ranges do not add up to the whole recording");
    let (status, _) = fetch(&server, &media, Some(&token), Some(&format!("bytes={}-", whole.len() + 10))).await?;
    assert_eq!(status, 416);

    // The town's chief reviews it; a chief of another town does not see it.
    let chiefs = demo_staff(&server, "chief").await?;
    let own = chiefs.iter().find(|c| c.town_id() == town).context("the town's chief")?;
    let (status, list) = get_json(&server, "/api/review/group-calls", Some(&own.token)).await?;
    assert_eq!((status, list["total"].clone()), (200, Value::from(1)), "{list}");
    let (status, _) = fetch(&server, &media, Some(&own.token), Some("bytes=0-99")).await?;
    assert_eq!(status, 206);
    let before = accesses(&server, &token).await?;
    let mut outsiders = vec![login(&server, OTHER_SUP.0, OTHER_SUP.1).await?];
    if let Some(c) = chiefs.iter().find(|c| c.town_id() != town) {
        outsiders.push(c.token.clone());
    }
    for t in &outsiders {
        let (status, list) = get_json(&server, "/api/review/group-calls", Some(t)).await?;
        assert_eq!((status, list["total"].clone()), (200, Value::from(0)), "{list}");
        let (status, body) = get_json(&server, &format!("/api/review/group-calls/{call}"), Some(t)).await?;
        assert_eq!(status, 404, "{body}");
        let (status, _) = fetch(&server, &media, Some(t), None).await?;
        assert_eq!(status, 404);
    }

    // Neither the window, the dispatcher nor a kiosk reviews; nobody logged in is told to.
    let approver = p.approver.token.clone();
    let dispatcher = demo_staff(&server, "dispatcher").await?.into_iter().next().context("a dispatcher")?.token;
    for t in [approver.as_str(), dispatcher.as_str(), p.kiosk.token.as_str()] {
        let (status, body) = get_json(&server, "/api/review/group-calls", Some(t)).await?;
        assert_eq!(status, 403, "{body}");
        let (status, body) = get_json(&server, &format!("/api/review/group-calls/{call}"), Some(t)).await?;
        assert_eq!(status, 403, "{body}");
        let (status, _) = fetch(&server, &media, Some(t), None).await?;
        assert_eq!(status, 403);
    }
    for path in ["/api/review/group-calls".to_string(), format!("/api/review/group-calls/{call}"), media.clone()] {
        let (status, _) = fetch(&server, &path, None, None).await?;
        assert_eq!(status, 401, "{path}");
    }

    // Bad input: a clear 400 or 404, nothing served.
    for q in ["from=2026-13-01", "to=yesterday", "cursor=abc", "cursor=1-", "colour=red", "limit=-1"] {
        let (status, body) = get_json(&server, &format!("/api/review/group-calls?{q}"), Some(&token)).await?;
        assert_eq!(status, 400, "{q}: {body}");
        if !body["error"]["message"].is_string() {
            bail!("{q}: no error message in {body}");
        }
    }
    let (take, group) = {
        let (g, t) = call.split_once('-').context("id")?;
        (t.to_string(), g.to_string())
    };
    for id in ["nope", "1", &format!("{group}-{}", take.parse::<u64>()? + 1), "999999-1", &format!("{group}-{take}x")] {
        let (status, body) = get_json(&server, &format!("/api/review/group-calls/{id}"), Some(&token)).await?;
        assert_eq!(status, 404, "{id}: {body}");
    }
    let rec_id = rec["id"].as_i64().context("recording id")?;
    for path in [
        format!("/api/group-calls/{group}-1/recordings/{rec_id}/segments/0"),
        format!("/api/group-calls/{call}/recordings/999999/segments/0"),
        format!("/api/group-calls/{call}/recordings/{rec_id}/segments/99999"),
    ] {
        let (status, _) = fetch(&server, &path, Some(&token), None).await?;
        assert_eq!(status, 404, "{path}");
    }
    // A case's recording is not served as a group call's (nor the other way round).
    let (status, _) =
        fetch(&server, &format!("/api/cases/NOPE-1/recordings/{rec_id}/segments/0"), Some(&token), None).await?;
    assert!(status == 404 || status == 400, "{status}");
    // The refusals wrote nothing to the access record: since `before`, only the outsiders'
    // (empty) listings and this reading of the report.
    assert_eq!(accesses(&server, &token).await?, before + outsiders.len() + 1);
    Ok(())
}
