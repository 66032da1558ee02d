//! The manifests read back from the store: a recording's manifest (JSON, `record::Manifest`,
//! read by playback for the media type and by `cunneng verify` for the segment hashes) and the
//! signed case manifests of the audit record (canonical JSON, signature).
//! Input: a JSON document.
#![no_main]

use cunneng_media_recorder::record::Manifest;
use cunneng_signaling::audit::{AuditKey, canonical_json, manifest_hash};
use cunneng_signaling::service::access::MediaPart;
use cunneng_signaling::service::playback::media_type_of;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        let json = serde_json::to_vec(&m).expect("a manifest serializes");
        let back: Manifest = serde_json::from_slice(&json).expect("a written manifest reads back");
        assert_eq!(back, m);
        for part in [MediaPart::Archive, MediaPart::Segment(0), MediaPart::Segment(1)] {
            if let Some(t) = media_type_of(&m, part) {
                assert!(t.starts_with("video/") || t.starts_with("audio/"), "{t}");
            }
        }
    }

    // A case manifest is signed over its canonical JSON, stored as JSON text and verified
    // after reading it back: the canonical form must survive the round trip.
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let canonical = canonical_json(&v);
    let reread: serde_json::Value = serde_json::from_str(&canonical).expect("canonical JSON is JSON");
    assert_eq!(canonical_json(&reread), canonical, "canonical JSON is stable");
    let stored: serde_json::Value = serde_json::from_str(&v.to_string()).expect("stored JSON reads back");
    assert_eq!(manifest_hash(&stored), manifest_hash(&v), "a manifest's hash survives storage");
    let key = AuditKey::from_secret_hex(&"07".repeat(32)).expect("a fixed key");
    let signature = key.sign_manifest(&v);
    assert!(key.public().verify_manifest(&stored, &signature), "a signed manifest verifies after storage");
});
