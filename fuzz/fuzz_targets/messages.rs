//! Message parsing against arbitrary JSON-ish bytes: no panic, and whatever parses serialises
//! back to something that parses to the same message.
#![no_main]

use crvm_proto::msg::to_json;
use crvm_proto::{ClientMsg, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<ClientMsg>(data) {
        let again: ClientMsg = serde_json::from_slice(&to_json(&m)).expect("re-parses");
        assert_eq!(again, m);
    }
    if let Ok(m) = serde_json::from_slice::<ServerMsg>(data) {
        let again: ServerMsg = serde_json::from_slice(&to_json(&m)).expect("re-parses");
        assert_eq!(again, m);
    }
});
