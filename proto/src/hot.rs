//! The messages of a cmd burst — `cmd`, `cmd_ack`, `cmd_in`, `cmd_done` — written and read
//! without serde's machinery: a sender of small cmds spends more time on their JSON than on
//! their bytes otherwise. The wire is unchanged.
//!
//! Writing: [`Json::json`] gives exactly the bytes serde_json writes for every message (the
//! cmd messages by hand). Reading: [`ClientMsg::parse`] and [`ServerMsg::parse`] take the cmd
//! messages spelled exactly as [`Json::json`] writes them (no whitespace, fields in order, no
//! escapes in names, numbers in their shortest form) directly; anything else, valid or not,
//! goes to serde_json, which decides. So the direct path accepts nothing serde would refuse and
//! reads nothing differently (tests below and the `messages` fuzz target check both).

use crate::msg::{parse_i32, write_i32, write_json_str};
use crate::{ClientMsg, ServerMsg};

/// A control message's JSON, as serde_json writes it.
pub trait Json {
    /// Appends the JSON to `out`.
    fn write_json(&self, out: &mut Vec<u8>);

    fn json(&self) -> Vec<u8> {
        let mut j = Vec::new();
        self.write_json(&mut j);
        j
    }
}

/// Appends `msg` as serde_json writes it.
fn write_serde<T: serde::Serialize>(msg: &T, out: &mut Vec<u8>) {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no I/O.
    serde_json::to_writer(out, msg).expect("control messages always serialise");
}

impl Json for ClientMsg {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            ClientMsg::Cmd { n, to } => write_cmd(*n, to, out),
            ClientMsg::CmdAck { upto } => {
                out.extend_from_slice(br#"{"t":"cmd_ack","c":{"upto":"#);
                write_u64(*upto, out);
                out.extend_from_slice(b"}}");
            }
            m => write_serde(m, out),
        }
    }
}

impl Json for ServerMsg {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            ServerMsg::CmdIn { n, from } => write_cmd_in(*n, from, out),
            ServerMsg::CmdDone { ns, code } => write_cmd_done(ns, *code, out),
            m => write_serde(m, out),
        }
    }
}

/// Bytes of a message's JSON besides its strings and numbers: with the longest number (20
/// digits) included, a buffer of this much more than the strings needs no second allocation.
const FIXED: usize = 64;

/// `cmd {n, to}`.
pub fn cmd_json(n: u64, to: &str) -> Vec<u8> {
    let mut j = Vec::with_capacity(FIXED + to.len());
    write_cmd(n, to, &mut j);
    j
}

fn write_cmd(n: u64, to: &str, j: &mut Vec<u8>) {
    j.extend_from_slice(br#"{"t":"cmd","c":{"n":"#);
    write_u64(n, j);
    j.extend_from_slice(br#","to":""#);
    write_json_str(to, j);
    j.extend_from_slice(br#""}}"#);
}

/// `cmd_in {n, from}`, without a `ServerMsg` (and its `String`) to write it from.
pub fn cmd_in_json(n: u64, from: &str) -> Vec<u8> {
    let mut j = Vec::with_capacity(FIXED + from.len());
    write_cmd_in(n, from, &mut j);
    j
}

fn write_cmd_in(n: u64, from: &str, j: &mut Vec<u8>) {
    j.extend_from_slice(br#"{"t":"cmd_in","c":{"n":"#);
    write_u64(n, j);
    j.extend_from_slice(br#","from":""#);
    write_json_str(from, j);
    j.extend_from_slice(br#""}}"#);
}

/// `cmd_done {ns, code}`.
pub fn cmd_done_json(ns: &[u64], code: i32) -> Vec<u8> {
    let mut j = Vec::with_capacity(FIXED + 21 * ns.len());
    write_cmd_done(ns, code, &mut j);
    j
}

fn write_cmd_done(ns: &[u64], code: i32, j: &mut Vec<u8>) {
    j.extend_from_slice(br#"{"t":"cmd_done","c":{"ns":["#);
    for (i, &n) in ns.iter().enumerate() {
        if i > 0 {
            j.push(b',');
        }
        write_u64(n, j);
    }
    j.extend_from_slice(br#"],"code":"#);
    write_i32(code, j);
    j.extend_from_slice(b"}}");
}

impl ClientMsg {
    /// Parses a client message: `cmd` and `cmd_ack` directly when spelled as this crate writes
    /// them, everything else by serde_json (whose error is returned).
    pub fn parse(json: &[u8]) -> serde_json::Result<ClientMsg> {
        match parse_cmd(json).or_else(|| parse_cmd_ack(json)) {
            Some(m) => Ok(m),
            None => serde_json::from_slice(json),
        }
    }
}

impl ServerMsg {
    /// Parses a server message: `cmd_in` and `cmd_done` directly when spelled as this crate
    /// writes them, everything else by serde_json (whose error is returned).
    pub fn parse(json: &[u8]) -> serde_json::Result<ServerMsg> {
        match parse_cmd_in(json).or_else(|| parse_cmd_done(json)) {
            Some(m) => Ok(m),
            None => serde_json::from_slice(json),
        }
    }
}

fn parse_cmd(json: &[u8]) -> Option<ClientMsg> {
    let rest = json.strip_prefix(br#"{"t":"cmd","c":{"n":"#)?;
    let (n, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(br#","to":""#)?;
    let (to, rest) = plain_str(rest)?;
    (rest == b"}}").then_some(ClientMsg::Cmd { n, to })
}

fn parse_cmd_ack(json: &[u8]) -> Option<ClientMsg> {
    let rest = json.strip_prefix(br#"{"t":"cmd_ack","c":{"upto":"#)?;
    let (upto, rest) = parse_u64(rest)?;
    (rest == b"}}").then_some(ClientMsg::CmdAck { upto })
}

fn parse_cmd_in(json: &[u8]) -> Option<ServerMsg> {
    let rest = json.strip_prefix(br#"{"t":"cmd_in","c":{"n":"#)?;
    let (n, rest) = parse_u64(rest)?;
    let rest = rest.strip_prefix(br#","from":""#)?;
    let (from, rest) = plain_str(rest)?;
    (rest == b"}}").then_some(ServerMsg::CmdIn { n, from })
}

fn parse_cmd_done(json: &[u8]) -> Option<ServerMsg> {
    let mut rest = json.strip_prefix(br#"{"t":"cmd_done","c":{"ns":["#)?;
    let mut ns = Vec::new();
    if let Some(r) = rest.strip_prefix(b"]") {
        rest = r;
    } else {
        loop {
            let (n, r) = parse_u64(rest)?;
            ns.push(n);
            match r.split_first()? {
                (b',', r) => rest = r,
                (b']', r) => {
                    rest = r;
                    break;
                }
                _ => return None,
            }
        }
    }
    let rest = rest.strip_prefix(br#","code":"#)?;
    let (code, rest) = parse_i32(rest)?;
    (rest == b"}}").then_some(ServerMsg::CmdDone { ns, code })
}

/// A JSON unsigned integer at the start of `b` in its shortest form, of at most 19 digits (so
/// it fits a `u64`; longer ones are left to serde), and the rest.
fn parse_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 || (n > 1 && b[0] == b'0') {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    Some((v, &b[n..]))
}

/// The rest of a JSON string whose opening quote is consumed, if it needs no unescaping (no
/// `\`, no control character) and is valid UTF-8; and what follows its closing quote.
fn plain_str(b: &[u8]) -> Option<(String, &[u8])> {
    let end = b
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    if b[end] != b'"' {
        return None;
    }
    let s = std::str::from_utf8(&b[..end]).ok()?.to_owned();
    Some((s, &b[end + 1..]))
}

/// Appends `v` in decimal.
pub(crate) fn write_u64(mut v: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: [&str; 8] = [
        "bob",
        "",
        "a\"b",
        "back\\slash",
        "tab\tnew\nline",
        "\u{0}\u{1f}\u{7f}",
        "é€😀",
        "\u{8}\u{c}\r",
    ];
    const NUMBERS: [u64; 7] = [0, 1, 9, 10, 12345, 9_999_999_999_999_999_999, u64::MAX];

    fn client_msgs() -> Vec<ClientMsg> {
        let mut v = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let n = NUMBERS[i % NUMBERS.len()];
            v.push(ClientMsg::Cmd {
                n,
                to: (*name).into(),
            });
            v.push(ClientMsg::CmdAck { upto: n });
        }
        v.push(ClientMsg::Cancel { sid: 3 });
        v
    }

    fn server_msgs() -> Vec<ServerMsg> {
        let mut v = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let n = NUMBERS[i % NUMBERS.len()];
            v.push(ServerMsg::CmdIn {
                n,
                from: (*name).into(),
            });
            let ns = NUMBERS[..i % NUMBERS.len()].to_vec();
            let code = [i32::MIN, -7, 0, 1, 1102, i32::MAX][i % 6];
            v.push(ServerMsg::CmdDone { ns, code });
        }
        v.push(ServerMsg::Cancelled { sid: 3 });
        v
    }

    #[test]
    fn written_by_hand_is_serdes_to_the_byte_and_parses_back() {
        for m in client_msgs() {
            let mine = m.json();
            assert_eq!(mine, serde_json::to_vec(&m).unwrap(), "{m:?}");
            assert_eq!(ClientMsg::parse(&mine).unwrap(), m);
        }
        for m in server_msgs() {
            let mine = m.json();
            assert_eq!(mine, serde_json::to_vec(&m).unwrap(), "{m:?}");
            assert_eq!(ServerMsg::parse(&mine).unwrap(), m);
        }
        assert_eq!(
            cmd_in_json(7, "al\"ice"),
            ServerMsg::CmdIn {
                n: 7,
                from: "al\"ice".into()
            }
            .json()
        );
    }

    #[test]
    fn the_direct_path_takes_what_the_writer_writes() {
        // Names without escapes are read directly (the general path would give the same).
        assert!(parse_cmd(&cmd_json(12, "bob")).is_some());
        assert!(parse_cmd_ack(br#"{"t":"cmd_ack","c":{"upto":0}}"#).is_some());
        assert!(parse_cmd_in(&cmd_in_json(u64::MAX / 10, "é€😀")).is_some());
        assert!(parse_cmd_done(&cmd_done_json(&[], 0)).is_some());
        assert!(parse_cmd_done(&cmd_done_json(&[1, 2, 3], -1)).is_some());
        // Escapes, 20-digit numbers and other spellings go the general way, and still parse.
        for general in [
            &cmd_json(1, "a\"b")[..],
            &cmd_in_json(u64::MAX, "x")[..],
            br#"{"t":"cmd","c":{"to":"bob","n":1}}"#,
            br#"{"t":"cmd", "c":{"n":1,"to":"bob"}}"#,
            br#"{"c":{"n":1,"to":"bob"},"t":"cmd"}"#,
            br#"{"t":"cmd","c":{"n":1,"to":"bob","extra":true}}"#,
            b"{\"t\":\"cmd\",\"c\":{\"n\":1,\"to\":\"bob\"}}\n",
        ] {
            assert!(parse_cmd(general).is_none() && parse_cmd_in(general).is_none());
            let serde = serde_json::from_slice::<ClientMsg>(general).ok();
            let serde_in = serde_json::from_slice::<ServerMsg>(general).ok();
            assert_eq!(ClientMsg::parse(general).ok(), serde);
            assert_eq!(ServerMsg::parse(general).ok(), serde_in);
            assert!(serde.is_some() || serde_in.is_some(), "{general:?}");
        }
    }

    /// Every malformed spelling is refused by the direct path and then by serde, with serde's
    /// error.
    #[test]
    fn malformed_is_refused_as_serde_refuses_it() {
        let bad: [&[u8]; 18] = [
            br#"{"t":"cmd","c":{"n":01,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":-1,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":1.5,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":1e3,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":18446744073709551616,"to":"bob"}}"#,
            br#"{"t":"cmd","c":{"n":1,"to":"bob"}} x"#,
            br#"{"t":"cmd","c":{"n":1,"to":"bob"}"#,
            br#"{"t":"cmd","c":{"n":1,"to":"bob}}"#,
            b"{\"t\":\"cmd\",\"c\":{\"n\":1,\"to\":\"b\x01b\"}}",
            b"{\"t\":\"cmd\",\"c\":{\"n\":1,\"to\":\"\xff\"}}",
            br#"{"t":"cmd_ack","c":{"upto":"1"}}"#,
            br#"{"t":"cmd_in","c":{"n":1,"from":"a","from":"b"}}"#,
            br#"{"t":"cmd_done","c":{"ns":[1,],"code":0}}"#,
            br#"{"t":"cmd_done","c":{"ns":[,1],"code":0}}"#,
            br#"{"t":"cmd_done","c":{"ns":[1 2],"code":0}}"#,
            br#"{"t":"cmd_done","c":{"ns":[1],"code":2147483648}}"#,
            br#"{"t":"cmd_done","c":{"ns":[1],"code":-0x1}}"#,
        ];
        for b in bad {
            assert!(
                parse_cmd(b).is_none() && parse_cmd_ack(b).is_none(),
                "{b:?}"
            );
            assert!(
                parse_cmd_in(b).is_none() && parse_cmd_done(b).is_none(),
                "{b:?}"
            );
            let c = ClientMsg::parse(b).unwrap_err().to_string();
            let s = ServerMsg::parse(b).unwrap_err().to_string();
            assert_eq!(
                c,
                serde_json::from_slice::<ClientMsg>(b)
                    .unwrap_err()
                    .to_string()
            );
            assert_eq!(
                s,
                serde_json::from_slice::<ServerMsg>(b)
                    .unwrap_err()
                    .to_string()
            );
        }
    }

    /// Every one-byte change and every truncation of a message the direct path reads: whatever
    /// it still reads, serde reads the same; whatever it refuses, the general parse decides.
    #[test]
    fn mutations_agree_with_serde() {
        let wires = [
            cmd_json(1234, "bob"),
            ClientMsg::CmdAck { upto: 99 }.json(),
            cmd_in_json(77, "alice"),
            cmd_done_json(&[5, 60, 700], 1102),
        ];
        let alphabet = b"0123456789-+.,:[]{}\" \\eaxt\x00\xff";
        for wire in wires {
            let mut cases = Vec::new();
            for cut in 0..wire.len() {
                cases.push(wire[..cut].to_vec());
            }
            for i in 0..wire.len() {
                for &c in alphabet {
                    let mut m = wire.clone();
                    m[i] = c;
                    cases.push(m);
                }
            }
            for m in cases {
                assert_eq!(
                    ClientMsg::parse(&m).ok(),
                    serde_json::from_slice::<ClientMsg>(&m).ok(),
                    "{m:?}"
                );
                assert_eq!(
                    ServerMsg::parse(&m).ok(),
                    serde_json::from_slice::<ServerMsg>(&m).ok(),
                    "{m:?}"
                );
            }
        }
    }
}
