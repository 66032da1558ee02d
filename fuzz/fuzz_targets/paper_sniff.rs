//! The upload's type check (`service::papers::sniff`, by magic bytes on the first chunk) and
//! the paper name check (`clean_name`). Input: the first bytes of an upload, which double as
//! a name.
#![no_main]

use cunneng_signaling::service::papers::{MAX_NAME_CHARS, MIN_PAPER_BYTES, clean_name, sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let t = sniff(data);
    let expected = if data.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else {
        None
    };
    assert_eq!(t, expected);
    // The first chunk (at least MIN_PAPER_BYTES) decides for the whole paper: the type of any
    // prefix that long is the type of the whole.
    for cut in MIN_PAPER_BYTES as usize..data.len().min(64) {
        assert_eq!(sniff(&data[..cut]), t, "cut at {cut}");
    }

    if let Ok(raw) = std::str::from_utf8(data)
        && let Ok(name) = clean_name(raw)
    {
        assert_eq!(name, raw.trim());
        assert!(!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS);
        assert!(!name.chars().any(char::is_control));
        assert!(!name.contains('/') && !name.contains('\\') && !name.contains("..") && !name.starts_with('.'));
        // A clean name is a file name on every system the papers are exported to.
        assert!(std::path::Path::new(&name).components().count() == 1, "{name:?}");
    }
});
