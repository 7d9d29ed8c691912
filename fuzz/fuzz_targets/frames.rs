//! The frame decoder against arbitrary bytes, fed in arbitrary pieces, with or without payloads
//! of their own: it must never panic, never buffer more than one maximal frame plus one read,
//! and every frame it returns must respect the limits it was given.
#![no_main]

use crvm_proto::frame::{Decoder, Kind, HEADER_LEN};
use crvm_proto::{ClientMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

const MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses the piece size, so the fuzzer explores every way of cutting.
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut & 0x7f).max(1);
    let mut dec = Decoder::new(MAX);
    // Its high bit: large data payloads read into buffers of their own, as the server does.
    if cut & 0x80 != 0 {
        dec.own_payloads(|n| vec![0; n]);
    }
    for piece in bytes.chunks(step) {
        dec.feed(piece);
        loop {
            match dec.next_frame() {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= MAX as usize);
                    if f.kind == Kind::Control {
                        let (json, _) = f.control().expect("decoder checked the split");
                        let _ = serde_json::from_slice::<ClientMsg>(json);
                        let _ = serde_json::from_slice::<ServerMsg>(json);
                    }
                }
                Ok(None) => break,
                Err(_) => return, // the connection would be closed here
            }
        }
        assert!(dec.buffered() <= HEADER_LEN + MAX as usize + step);
    }
});
