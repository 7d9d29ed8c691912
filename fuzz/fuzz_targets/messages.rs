//! Message parsing against arbitrary JSON-ish bytes: no panic; whatever parses serialises back
//! to something that parses to the same message; the parsers with a direct path for the cmd
//! messages (`ClientMsg::parse`, `ServerMsg::parse`) accept and read exactly what serde does;
//! and the hand-written JSON of a message is serde's to the byte.
#![no_main]

use crvm_proto::msg::to_json;
use crvm_proto::{ClientMsg, Json, ServerMsg};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let client = serde_json::from_slice::<ClientMsg>(data);
    assert_eq!(ClientMsg::parse(data).ok(), client.as_ref().ok().cloned());
    if let Ok(m) = client {
        assert_eq!(m.json(), to_json(&m));
        let again: ClientMsg = serde_json::from_slice(&to_json(&m)).expect("re-parses");
        assert_eq!(again, m);
    }
    let server = serde_json::from_slice::<ServerMsg>(data);
    assert_eq!(ServerMsg::parse(data).ok(), server.as_ref().ok().cloned());
    if let Ok(m) = server {
        assert_eq!(m.json(), to_json(&m));
        let again: ServerMsg = serde_json::from_slice(&to_json(&m)).expect("re-parses");
        assert_eq!(again, m);
    }
});
