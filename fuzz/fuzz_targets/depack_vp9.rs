//! The VP9 RTP depacketizer, alone and behind the assembler (reordering, loss, frames).
//! Input: packets as fuzz/README.md describes.
#![no_main]

use cunneng_media_recorder::record::CodecKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| cunneng_fuzz::run_depacketizer(CodecKind::Vp9, data));
