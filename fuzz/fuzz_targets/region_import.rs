//! The region import (`cunneng import FILE`, docs/import-format.md): parsed and checked whole
//! before anything is written; a file that passes is imported into an in-memory database, and
//! importing it a second time creates nothing (items are matched by natural key).
//! Input: a region file (TOML).
#![no_main]

use cunneng_signaling::db::Db;
use cunneng_signaling::import::{check_str, import_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(plain_passwords) = check_str(text) else { return };
    // Each plain password costs an argon2id hash (19 MiB, tens of ms): leave those files at
    // the check, which is where a bad file is refused.
    if plain_passwords > 0 {
        return;
    }
    let db = Db::open_in_memory().expect("an in-memory database");
    let Ok(first) = import_str(&db, text) else { return };
    let again = import_str(&db, text).expect("a file that imported once imports again");
    for (what, tally) in [
        ("towns", again.towns),
        ("villages", again.villages),
        ("windows", again.windows),
        ("matters", again.matters),
        ("accounts", again.accounts),
        ("kiosks", again.kiosks),
    ] {
        assert_eq!(tally.created, 0, "the second import created {what}: {first} then {again}");
    }
    assert_eq!(first.window_matters, again.window_matters);
});
