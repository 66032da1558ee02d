#!/usr/bin/env python3
"""Writes the checked-in seed corpora (fuzz/corpus/TARGET/). Run from anywhere:
`python3 fuzz/make_seeds.py`. The input formats are in fuzz/README.md. Seeds are small,
valid-looking inputs, so that the fuzzer starts past the first checks of each parser."""
import json, os, pathlib, struct

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

def write(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)

# --- sealed_object: the storage vectors (mode 0: an object as is), and plans (mode 1) ------
vectors = ROOT / "storage" / "tests" / "vectors"
for f in sorted(vectors.glob("*.cne")):
    write("sealed_object", "vector-" + f.stem, b"\x00" + f.read_bytes())
write("sealed_object", "vector-good-pieces", b"\x0e" + (vectors / "good.cne").read_bytes())
# mode, chunk size (0: 64, 1: 128, 2: 256 bytes), rng seed, chunk count, chunks, edits.
write("sealed_object", "plan-three-chunks", bytes([1, 1, 5, 3, 0x00, 0x00, 0x01, 44]))
write("sealed_object", "plan-empty", bytes([1, 0, 1, 1, 0x01, 0]))
write("sealed_object", "plan-two-final", bytes([1, 0, 2, 2, 0x01, 10, 0x01, 10]))
write("sealed_object", "plan-reordered", bytes([1, 0, 3, 3, 0x90, 0x80, 0xa1, 20]))
write("sealed_object", "plan-edits", bytes([1, 2, 4, 2, 0x00, 0x01, 30,
                                             0, 0x00, 0x10, 0x01,   # flip a header byte
                                             2, 0x01, 0x00, 0x55,   # insert a byte in the body
                                             1, 0x00, 0xf0, 0x00])) # truncate

# --- depacketizers: packets = flags u8, len u8, payload, [repeat u8] ------------------------
MARKER, NEW_TS, REPEAT = 0x01, 0x02, 0x80
def seq(step):  # 0: +1, 1: duplicate, 2: one back, 3: one lost, 4: jump
    return step << 2
def late(t):    # 0, 20, 200, 1000 ms before the packet
    return t << 5
def pkts(*ps):
    out = b""
    for p in ps:
        flags, payload = p[0], bytes(p[1])
        out += bytes([flags, len(payload)]) + payload
        if flags & REPEAT:
            out += bytes([p[2]])
    return out

def vp8_key(w, h):
    return bytes([0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a]) + struct.pack("<HH", w, h) + b"\xaa" * 20
k = vp8_key(640, 480)
delta = bytes([0x10, 0x31, 0x02, 0x00, 0xaa])
write("depack_vp8", "key-three-packets-then-delta", pkts(
    (NEW_TS | late(1), bytes([0x90, 0xe0, 0x81, 0x23, 0x05, 0x40]) + k[:8]),
    (0, bytes([0x80, 0xe0, 0x81, 0x23, 0x05, 0x40]) + k[8:20]),
    (MARKER, b"\x00" + k[20:]),
    (NEW_TS | MARKER | late(1), delta)))
write("depack_vp8", "loss-then-key", pkts(
    (NEW_TS | MARKER, b"\x10" + k),
    (NEW_TS | seq(3) | late(2), delta[:3]),
    (MARKER, b"\x00\x01"),
    (NEW_TS | MARKER | late(3), b"\x10" + k)))
write("depack_vp8", "reordered-and-repeated", pkts(
    (NEW_TS, b"\x10" + k[:10]),
    (MARKER | seq(3), b"\x00" + k[10:]),
    (seq(2), b"\x00" + k[10:20]),
    (NEW_TS | MARKER | REPEAT | late(1), delta, 1)))

def bits_to_bytes(bits):
    while len(bits) % 8:
        bits.append(0)
    return bytes(int("".join(map(str, bits[i:i + 8])), 2) for i in range(0, len(bits), 8))
def vp9_key(w, h):
    bits = [1, 0, 0, 0, 0, 0, 1, 0]
    bits += [(0x498342 >> i) & 1 for i in range(23, -1, -1)]
    bits += [0, 0, 1, 0]
    for v in (w - 1, h - 1):
        bits += [(v >> i) & 1 for i in range(15, -1, -1)]
    return bits_to_bytes(bits) + b"\x55" * 12
k9 = vp9_key(640, 480)
# B=0x08, E=0x04, I=0x80 (7-bit picture id follows), P=0x40, L=0x20, F=0x10.
write("depack_vp9", "key-one-packet-then-delta", pkts(
    (NEW_TS | MARKER, bytes([0x8c, 0x01]) + k9),
    (NEW_TS | MARKER | late(1), bytes([0xcc, 0x02, 0x86, 0x00, 0x11]))))
write("depack_vp9", "key-two-packets", pkts(
    (NEW_TS, bytes([0x88, 0x05]) + k9[:8]),
    (MARKER, bytes([0x84, 0x05]) + k9[8:])))
write("depack_vp9", "two-spatial-layers", pkts(
    (NEW_TS, bytes([0xac, 0x07, 0x00, 0x00]) + vp9_key(320, 240)),
    (MARKER, bytes([0xac, 0x07, 0x02, 0x00]) + vp9_key(640, 480))))
write("depack_vp9", "flexible-with-refs", pkts(
    (NEW_TS | MARKER, bytes([0xdc, 0x09, 0x03, 0x04]) + b"\x86\x00\x40")))
write("depack_vp9", "scalability-structure", pkts(
    (NEW_TS | MARKER, bytes([0x8e, 0x0a, 0x18, 0x02, 0x80, 0x01, 0xe0, 0x01, 0x04, 0x02, 0x01]) + k9)))

SPS = bytes([0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01])
PPS = bytes([0x68, 0xce, 0x3c, 0x80])
idr = b"\x65" + b"\x88" * 30
stap = b"\x78" + struct.pack(">H", len(SPS)) + SPS + struct.pack(">H", len(PPS)) + PPS
write("depack_h264", "stap-then-fu-a-idr", pkts(
    (NEW_TS, stap),
    (0, b"\x7c\x85" + idr[1:11]),
    (0, b"\x7c\x05" + idr[11:21]),
    (MARKER, b"\x7c\x45" + idr[21:]),
    (NEW_TS | MARKER | late(1), b"\x41\x9a\x02\x03")))
write("depack_h264", "single-nal-units", pkts(
    (NEW_TS, SPS), (0, PPS), (MARKER, idr),
    (NEW_TS | MARKER | late(1), b"\x09\x10"),
    (NEW_TS | MARKER | late(1), idr)))
write("depack_h264", "idr-without-parameter-sets", pkts((NEW_TS | MARKER, idr)))

write("depack_opus", "packets", pkts(
    (NEW_TS | MARKER, b"\xfc\x01\x02\x03"),
    (NEW_TS | late(1), b"\xf8"),
    (NEW_TS | seq(3) | late(1), b"\x78" + b"\x11" * 40),
    (NEW_TS | seq(2), b"\x78\x22"),
    (NEW_TS | REPEAT | late(1), b"\xfc\x05", 0)))

# --- ws_message: one text frame each ---------------------------------------------------------
for i, m in enumerate([
    {"type": "hello", "token": "0123456789abcdef0123"},
    {"type": "ping", "req": 1},
    {"type": "call.request", "matter_id": 3, "req": 7},
    {"type": "call.request", "matter_id": 3, "case_no": "ZH-20261206-0001"},
    {"type": "call.answer", "call_id": 12},
    {"type": "call.transfer", "call_id": 12, "window_id": 4},
    {"type": "presence.set", "presence": "away"},
    {"type": "group.start", "village_ids": [1, 2, 3]},
    {"type": "group.reinvite", "group_id": 2, "village_id": 5},
    {"type": "media.offer", "room": "call-1", "pc_id": "pc-1", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},
    {"type": "unknown.kind"},
    {"type": "call.answer", "call_id": "x", "req": 2},
]):
    write("ws_message", f"msg-{i:02}", json.dumps(m, ensure_ascii=False))
write("ws_message", "not-json", "{\"type\":")
write("ws_message", "split", "案件已办结 (the case is closed: done)")
write("ws_message", "split-nested", "无权操作 (not allowed for this role: cases (kiosk))")

# --- paper_sniff: first bytes of an upload (and names) ---------------------------------------
write("paper_sniff", "pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
write("paper_sniff", "jpeg", bytes([0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]) + b"JFIF\x00")
write("paper_sniff", "png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
write("paper_sniff", "name", "身份证正面.jpg")
write("paper_sniff", "name-path", "../户口本.pdf")
write("paper_sniff", "name-bidi", "gpj.\u202etxt")

# --- region_import: region files -------------------------------------------------------------
write("region_import", "demo", (ROOT / "demo" / "demo.toml").read_text())
write("region_import", "small", '''[county]
name = "测试县"
code = "CS"

[[towns]]
name = "甲镇"
any_window = true
villages = [{ name = "一村" }, { name = "二社区", kind = "community" }]
windows = [
    { name = "综合窗口" },
    { name = "不动产窗口", kind = "custom", matters = ["BDC-1"] },
]

[[matters]]
code = "BDC-1"
name = "不动产登记"
window = "custom"
required_papers = ["身份证", "房产证"]
keywords = ["房子"]
needs_signoff = true

[[accounts]]
username = "a1"
display_name = "甲"
role = "approver"
town = "甲镇"
window = "不动产窗口"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Q0hNd1N3cQ6yQpYw0fFjJ3Qyq7c5bH3rN0Qm2k6b8yM"

[[kiosks]]
town = "甲镇"
village = "一村"
token = "0123456789abcdef0123"

[[kiosks]]
town = "甲镇"
village = "二社区"
token_hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
''')
write("region_import", "refused", '[[towns]]\nname = ""\n[[matters]]\ncode = "A B"\nname = "x"\nwindow = "civil_affairs"\n')

# --- manifest: recording and case manifests ---------------------------------------------------
segment = {"index": 0, "start_ms": 0, "duration_ms": 10000, "container": "webm", "audio": "opus",
           "video": "vp8", "starts_with_keyframe": True, "bytes": 123456, "sha256": "ab" * 32}
write("manifest", "recording", json.dumps({
    "version": 1, "room": "call-1", "participant": "kiosk:2", "started_at_unix_ms": 1765000000000,
    "ended_at_unix_ms": 1765000020000, "duration_ms": 20000, "audio": "opus", "video": "vp8",
    "segments": [segment, dict(segment, index=1, start_ms=10000, video=None, container="matroska")],
    "gaps": [], "archive": {"container": "webm", "bytes": 246000, "sha256": "cd" * 32, "duration_ms": 20000},
    "archive_error": None,
    "stats": {"packets": 1, "sender_reports": 2, "overflow_drops": 0, "lost_packets": 0, "frames": 500,
              "dropped_frames": 0, "keyframe_requests": 1, "failed_segments": 0}}))
write("manifest", "case", json.dumps({
    "format": "cunneng-case-manifest/1", "key_id": "audit-1",
    "case": {"id": 1, "case_no": "ZH-20261206-0001", "status": "done", "matter": {"id": 3, "name": "老年优待证"},
             "village": {"id": 2, "name": "一村"}, "town": {"id": 1, "name": "甲镇"}, "created_at_ms": 1765000000000},
    "decision": {"outcome": "done_now", "note": "当场办结", "missing_items": [], "result_paper_id": None, "by": 4, "at_ms": 1765000100000},
    "signoff": None,
    "papers": [{"id": 1, "kind": "material", "name": "身份证正面.jpg", "content_type": "image/jpeg", "size": 1000, "sha256": "ef" * 32, "key": "papers/1/x"}],
    "calls": [], "recordings": [], "audit": [{"seq": 1, "hash": "00" * 32, "action": "case.created"}],
}, ensure_ascii=False))
write("manifest", "numbers", '{"a": 0.1, "b": -1.5e-7, "c": 18446744073709551615, "d": -9223372036854775808, "e": "\\u00e9\\ud83d\\ude00"}')

# --- regression seeds: inputs that found a bug (fuzz/README.md), kept so every run checks them
# VP9 keyframe of width field 0xffff: a width of 65536 wrapped to 0 (depack/vp9.rs).
write("depack_vp9", "regression-width-65536", bytes.fromhex(
    "0219ac07000082498342fffff00ef055555555b4b3620001b4b362000100000000000055555555555555550119ac075555"))
# One frame that never ends (no marker, one timestamp): the assembler kept every packet.
big = b"\x10" + b"\xaa" * 254
write("depack_vp8", "regression-frame-never-ends", bytes([0x82, 255]) + big + bytes([255, 0x80, 255]) + big + bytes([255]))
# A number beyond i64 read back as another float: canonical JSON changed in storage.
write("manifest", "regression-float", '{"a": 0.1, "b": -1.5e-7, "c": 18446744073709551616, "daudio": -92233720368524775808}')
# A type with a Chinese character in it: the error reply's words carried the English detail.
write("ws_message", "regression-chinese-type", '{"type": "presence.ooooooooottype案oaway"}')
