//! Every call through the server leaves, per participant, encrypted segments, a seekable
//! archive copy and a manifest in the object store: locally by default, in S3 (Garage) behind
//! the spool when configured. A crash keeps the closed segments and marks the recording
//! incomplete; a store outage loses nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cunneng_tests::client::{get_json, pairing};
use cunneng_tests::garage::Garage;
use cunneng_tests::recorded::{decrypt, recordings, start_call, wait_recordings};
use cunneng_tests::server::{Server, binary_path};
use serde_json::Value;

const MAGIC: &[u8] = b"CUNNENG\0";

/// (stream codec types, duration in seconds) of a media file, by ffprobe.
fn probe(file: &Path) -> Result<(Vec<String>, f64)> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type:format=duration", "-of", "json"])
        .arg(file)
        .output()
        .context("running ffprobe (scripts/test.sh installs ffmpeg)")?;
    if !out.status.success() {
        bail!("ffprobe {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let types = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["codec_type"].as_str().map(String::from))
        .collect();
    let duration = v["format"]["duration"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0.0);
    Ok((types, duration))
}

/// Seek to `at` seconds (by the cues) and read on without decoding.
fn seek_works(file: &Path, at: f64) -> Result<()> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at}"), "-i"])
        .arg(file)
        .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
        .output()?;
    if !out.status.success() {
        bail!("seeking in {}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Every file under `dir` (but temp files) is an encrypted object: none holds plaintext.
fn assert_all_encrypted(dir: &Path) -> Result<usize> {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let path = e?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if name.starts_with('.')
                || name == "lock"
                || name.ends_with(".json") && path.parent().is_some_and(|p| p == dir)
            {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            // A stored object starts with the format's magic; a spool file has a small header
            // (its key, size, hash) and then the stored object.
            let start = if name.ends_with(".spool") {
                bytes.windows(MAGIC.len()).take(2048).position(|w| w == MAGIC)
            } else {
                bytes.starts_with(MAGIC).then_some(0)
            };
            let Some(start) = start else { panic!("{} is not an encrypted object", path.display()) };
            for (what, magic) in [
                ("WebM/Matroska", &b"\x1a\x45\xdf\xa3"[..]),
                ("Ogg", b"OggS"),
                ("JPEG", b"\xff\xd8\xff"),
                ("PDF", b"%PDF"),
                ("PNG", b"\x89PNG"),
            ] {
                assert!(
                    !bytes.starts_with(magic) && !bytes[start..].starts_with(magic),
                    "{} is plaintext {what}",
                    path.display()
                );
            }
            n += 1;
        }
    }
    Ok(n)
}

#[tokio::test]
async fn call_is_recorded_encrypted_and_decrypts_to_seekable_webm() -> Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let call = start_call(&server, &p).await?;
    let case_no = call.case_no.clone();
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(20)).await;
    let call_secs = t0.elapsed().as_secs_f64();
    call.hang_up().await?;

    let recs = wait_recordings(&server, &p.approver.token, &case_no, |r| {
        r.len() == 2 && r.iter().all(|x| x["status"] == "complete")
    })
    .await?;
    // Recordings are for town staff and supervisors: not the village room, not unknown cases.
    let (st, _) = get_json(&server, &format!("/api/cases/{case_no}/recordings"), Some(&p.kiosk.token)).await?;
    assert_eq!(st, 403);
    let (st, _) = get_json(&server, "/api/cases/XX-00000000-0000/recordings", Some(&p.approver.token)).await?;
    assert_eq!(st, 404);
    let out = tempfile::tempdir()?;
    for rec in &recs {
        let segments = rec["segments"].as_array().context("segments")?;
        assert!(segments.len() >= 2, "a 20 s call has at least two segments of at most 10 s: {rec}");
        let archive = rec["archive_key"].as_str().context("archive key")?;
        let file = out.path().join("archive.webm");
        decrypt(&server, &[], archive, &file)?;
        let (types, duration) = probe(&file)?;
        assert!(types.contains(&"audio".to_string()) && types.contains(&"video".to_string()), "{types:?}");
        // The call's media ran from both sides connected to the hang-up.
        assert!((duration - call_secs).abs() <= 0.5, "archive lasts {duration:.3} s; the call {call_secs:.3} s");
        seek_works(&file, duration / 2.0)?;
        // A segment decrypts to a playable file too.
        let seg = out.path().join("seg.webm");
        decrypt(&server, &[], segments[0].as_str().unwrap(), &seg)?;
        assert!(probe(&seg)?.1 > 0.0);
    }
    let stored = assert_all_encrypted(&server.data_dir().join("objects"))?;
    assert!(stored >= 8, "segments, archives and manifests stored: {stored}");

    // verify walks everything and checks the manifests' hashes.
    let v =
        std::process::Command::new(binary_path()).arg("verify").arg("--data-dir").arg(server.data_dir()).output()?;
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).contains("0 damaged"));

    // A damaged object is reported as such and nothing is written.
    let key = recs[0]["segments"][0].as_str().unwrap();
    let path = server.data_dir().join("objects").join(key);
    let mut bytes = std::fs::read(&path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes)?;
    let bad = out.path().join("bad.webm");
    let err = decrypt(&server, &[], key, &bad).unwrap_err().to_string();
    assert!(err.contains("damaged"), "{err}");
    assert!(!bad.exists());
    let v =
        std::process::Command::new(binary_path()).arg("verify").arg("--data-dir").arg(server.data_dir()).output()?;
    assert!(!v.status.success());
    Ok(())
}

#[tokio::test]
async fn kill_9_mid_call_keeps_closed_segments_and_marks_the_recording_incomplete() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let call = start_call(&server, &p).await?;
    let case_no = call.case_no.clone();
    tokio::time::sleep(Duration::from_secs(25)).await;
    server.kill9().await?;
    drop(call);
    server.restart().await?;

    // Sessions live in the database: the approver's token still works after the restart.
    let recs = recordings(&server, &p.approver.token, &case_no).await?;
    assert_eq!(recs.len(), 2, "{recs:#?}");
    let out = tempfile::tempdir()?;
    for rec in &recs {
        assert_eq!(rec["status"], "incomplete", "{rec}");
        let segments = rec["segments"].as_array().context("segments")?;
        assert!(segments.len() >= 2, "25 s into the call two 10 s segments were closed: {rec}");
        for (i, key) in segments.iter().enumerate() {
            let file = out.path().join(format!("seg{i}.webm"));
            decrypt(&server, &[], key.as_str().unwrap(), &file)?;
            let (types, duration) = probe(&file)?;
            assert!(types.contains(&"video".to_string()), "{types:?}");
            assert!(duration > 0.0);
        }
    }
    Ok(())
}

#[tokio::test]
async fn store_outage_during_a_call_loses_nothing() -> Result<()> {
    let mut garage = Garage::start().await?;
    let env = garage.server_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with_env(&["--demo"], &env).await?;
    let p = pairing(&server, 0).await?;
    let call = start_call(&server, &p).await?;
    let case_no = call.case_no.clone();
    tokio::time::sleep(Duration::from_secs(3)).await;
    garage.stop().await?;
    tokio::time::sleep(Duration::from_secs(12)).await;
    call.hang_up().await?;
    let recs = wait_recordings(&server, &p.approver.token, &case_no, |r| {
        r.len() == 2 && r.iter().all(|x| x["status"] == "complete")
    })
    .await?;
    // Acknowledged while the store was down: all of it waits, encrypted, in the spool.
    let spool: PathBuf = server.data_dir().join("spool");
    assert!(assert_all_encrypted(&spool)? > 0, "objects wait in the spool");
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(-1.0)
    };
    let metrics =
        cunneng_tests::client::http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    assert!(metric(&metrics, "cunneng_spool_objects") > 0.0, "{metrics}");

    garage.start_again().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let m = cunneng_tests::client::http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
        if metric(&m, "cunneng_spool_objects") == 0.0 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the spool did not empty after the store returned:\n{m}\n{}", server.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Everything is in the bucket, intact, and decrypts: verify reads through the store.
    let v = std::process::Command::new(binary_path())
        .arg("verify")
        .arg("--data-dir")
        .arg(server.data_dir())
        .envs(env.iter().copied())
        .output()?;
    let stdout = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&v.stderr));
    let expected: usize = recs.iter().map(|r| r["segments"].as_array().map_or(0, |s| s.len()) + 2).sum();
    assert!(
        stdout.contains(&format!("verified {expected} objects: {expected} good")),
        "{stdout} (expected {expected})"
    );
    let out = tempfile::tempdir()?;
    let file = out.path().join("archive.webm");
    decrypt(&server, &env, recs[0]["archive_key"].as_str().unwrap(), &file)?;
    let (types, _) = probe(&file)?;
    assert!(types.contains(&"audio".to_string()) && types.contains(&"video".to_string()));
    Ok(())
}
