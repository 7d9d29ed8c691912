//! The frames of a node link: `u32` length of the rest, a kind byte, the message, then its
//! attachment (a cmd's bytes, a data chunk).
//!
//! The messages of every cmd and data chunk (`cmd`, `cmd_done`, `data`) have a fixed binary
//! layout, integers big-endian and strings as a `u32` length and their UTF-8 bytes; every other
//! message is JSON (`u32` length, then the JSON of [`Msg`]). A frame is encoded straight into
//! the link's buffer from borrowed fields, and read straight from the link's buffered reader,
//! its attachment into a vector of its own (no copy of a whole frame either way).
//!
//! A session is named by its [`LoginGen`] (`gen`, `from`) on the wire: the receiving node
//! knows it as one of its own sessions, or as a session of the sending node.

use crvm_proto::{ServerMsg, XferKind};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::ids::LoginGen;

/// What travels on a link (encoded by this module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum Msg {
    /// First frame of a connection: who dials, with the key of the node it dials.
    Hello {
        node: String,
        key: String,
    },
    /// A message for session `gen` of the receiving node (from its relay state over there).
    Deliver {
        gen: LoginGen,
        msg: ServerMsg,
    },
    /// Session `from` (user `user`) sends cmd `n` to user `to` of `tenant`, whose session is
    /// on the receiving node; the attachment is the cmd.
    Cmd {
        from: LoginGen,
        tenant: String,
        user: String,
        to: String,
        n: u64,
    },
    /// The `cmd_done` of session `gen` of the receiving node (from its relay state over there).
    CmdDone {
        gen: LoginGen,
        ns: Vec<u64>,
        code: i32,
    },
    /// Session `from` offers a stream to user `to` of `tenant` (request `re`).
    Offer {
        from: LoginGen,
        tenant: String,
        to: String,
        re: u64,
        task: String,
        user: String,
        kind: XferKind,
        size: u64,
        name: String,
    },
    /// A data frame of session `from`'s stream; the attachment is the frame's payload.
    Data {
        from: LoginGen,
        sid: u64,
    },
    DataEnd {
        from: LoginGen,
        sid: u64,
        hash: String,
    },
    Cancel {
        from: LoginGen,
        sid: u64,
    },
    /// Session `gen` of the sending node ended: its streams here are cancelled.
    Ended {
        gen: LoginGen,
    },
    /// The sending node (draining) will hand session `gen` (user `user` of `tenant`) to the
    /// receiving one: it holds whatever reaches the session there until it arrives. Answered.
    Expect {
        token: u64,
        gen: LoginGen,
        tenant: String,
        user: String,
        dnd: i32,
        notify: bool,
        call: Option<CallState>,
    },
    /// The session expected; the attachment is its state (JSON). Answered.
    Handoff {
        token: u64,
    },
    /// The session expected will not come after all (it ended meanwhile).
    Forget {
        gen: LoginGen,
    },
    /// Session `gen` of the sending node arrived there from the receiving node: answered
    /// `fence_back` through the receiving node's passing on to it, behind every message for
    /// that session it passed on before.
    Fence {
        gen: LoginGen,
    },
    /// The answer to `fence`: what the sending node passed on for session `gen` has arrived.
    FenceBack {
        gen: LoginGen,
    },
    /// Sessions of the sending node now live at other nodes (`sessions`: gen, node), and the
    /// receiving node's senders' cmds to them are settled there (`cmds`: sender, n, node).
    /// Answered once everything sent before it to the sending node is on its way.
    Rehome {
        token: u64,
        sessions: Vec<(LoginGen, String)>,
        cmds: Vec<(LoginGen, u64, String)>,
    },
    /// The answer to `expect`, `handoff` or `rehome` `token`: `addr` and `ws_addr` are where
    /// the expecting node's clients resume.
    Answer {
        token: u64,
        ok: bool,
        #[serde(default)]
        addr: String,
        #[serde(default)]
        ws_addr: String,
    },
    /// Session `gen` of the receiving node broke the protocol here: close it.
    Violation {
        gen: LoginGen,
        what: String,
    },
}

/// The call a moving session is in (a node's `LocalCall`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallState {
    pub call_id: String,
    pub peer: String,
    pub caller: bool,
    pub connected: bool,
    pub meet_obj: String,
}

const JSON: u8 = 0;
const CMD: u8 = 1;
const CMD_DONE: u8 = 2;
const DATA: u8 = 3;

/// Appends the frame of cmd `n` of session `from` (user `user` of `tenant`) to user `to`.
pub fn put_cmd(
    f: &mut Vec<u8>,
    from: LoginGen,
    n: u64,
    [tenant, user, to]: [&str; 3],
    data: &[u8],
) {
    let len = 1 + 16 + 12 + tenant.len() + user.len() + to.len() + data.len();
    f.reserve(4 + len);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.push(CMD);
    f.extend_from_slice(&from.0.to_be_bytes());
    f.extend_from_slice(&n.to_be_bytes());
    for s in [tenant, user, to] {
        f.extend_from_slice(&(s.len() as u32).to_be_bytes());
        f.extend_from_slice(s.as_bytes());
    }
    f.extend_from_slice(data);
}

/// Appends the frame of a `cmd_done` for session `gen`.
pub fn put_cmd_done(f: &mut Vec<u8>, gen: LoginGen, ns: &[u64], code: i32) {
    let len = 1 + 8 + 4 + 4 + 8 * ns.len();
    f.reserve(4 + len);
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.push(CMD_DONE);
    f.extend_from_slice(&gen.0.to_be_bytes());
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(&(ns.len() as u32).to_be_bytes());
    for n in ns {
        f.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends the frame of `msg` and its attachment.
pub fn put(f: &mut Vec<u8>, msg: &Msg, attachment: &[u8]) {
    match msg {
        Msg::Cmd {
            from,
            tenant,
            user,
            to,
            n,
        } => put_cmd(f, *from, *n, [tenant, user, to], attachment),
        Msg::CmdDone { gen, ns, code } => put_cmd_done(f, *gen, ns, *code),
        Msg::Data { from, sid } => {
            let len = 1 + 16 + attachment.len();
            f.reserve(4 + len);
            f.extend_from_slice(&(len as u32).to_be_bytes());
            f.push(DATA);
            f.extend_from_slice(&from.0.to_be_bytes());
            f.extend_from_slice(&sid.to_be_bytes());
            f.extend_from_slice(attachment);
        }
        _ => {
            let json = serde_json::to_vec(msg).expect("link messages serialize");
            let len = 1 + 4 + json.len() + attachment.len();
            f.reserve(4 + len);
            f.extend_from_slice(&(len as u32).to_be_bytes());
            f.push(JSON);
            f.extend_from_slice(&(json.len() as u32).to_be_bytes());
            f.extend_from_slice(&json);
            f.extend_from_slice(attachment);
        }
    }
}

/// Reads one frame of at most `max` bytes: its message and its attachment. `None` at the end
/// of the stream or on a frame that is not well formed (the link is then closed).
pub async fn read(rd: &mut (impl AsyncRead + Unpin), max: usize) -> Option<(Msg, Vec<u8>)> {
    let len = rd.read_u32().await.ok()? as usize;
    if !(1..=max).contains(&len) {
        return None;
    }
    let mut r = Frame { rd, left: len };
    let msg = match r.u8().await? {
        CMD => Msg::Cmd {
            from: LoginGen(r.u64().await?),
            n: r.u64().await?,
            tenant: r.str().await?,
            user: r.str().await?,
            to: r.str().await?,
        },
        CMD_DONE => {
            let gen = LoginGen(r.u64().await?);
            let code = r.u32().await? as i32;
            let count = r.u32().await? as usize;
            // Every number takes eight bytes of the frame: the count cannot promise more.
            if count > r.left / 8 {
                return None;
            }
            let mut ns = Vec::with_capacity(count);
            for _ in 0..count {
                ns.push(r.u64().await?);
            }
            Msg::CmdDone { gen, ns, code }
        }
        DATA => Msg::Data {
            from: LoginGen(r.u64().await?),
            sid: r.u64().await?,
        },
        JSON => {
            let n = r.u32().await? as usize;
            serde_json::from_slice(&r.bytes(n).await?).ok()?
        }
        _ => return None,
    };
    let rest = r.left;
    let attachment = r.bytes(rest).await?;
    Some((msg, attachment))
}

/// The part of a frame not read yet.
struct Frame<'a, R> {
    rd: &'a mut R,
    left: usize,
}

impl<R: AsyncRead + Unpin> Frame<'_, R> {
    async fn fixed<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.left = self.left.checked_sub(N)?;
        let mut b = [0; N];
        self.rd.read_exact(&mut b).await.ok()?;
        Some(b)
    }

    async fn u8(&mut self) -> Option<u8> {
        Some(self.fixed::<1>().await?[0])
    }

    async fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.fixed().await?))
    }

    async fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.fixed().await?))
    }

    async fn bytes(&mut self, n: usize) -> Option<Vec<u8>> {
        self.left = self.left.checked_sub(n)?;
        let mut b = vec![0; n];
        self.rd.read_exact(&mut b).await.ok()?;
        Some(b)
    }

    async fn str(&mut self) -> Option<String> {
        let n = self.u32().await? as usize;
        String::from_utf8(self.bytes(n).await?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], max: usize) -> Vec<Option<(Msg, Vec<u8>)>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut rd = bytes;
            let mut out = Vec::new();
            while !rd.is_empty() {
                let f = read(&mut rd, max).await;
                let end = f.is_none();
                out.push(f);
                if end {
                    break;
                }
            }
            out
        })
    }

    #[test]
    fn every_kind_round_trips_back_to_back() {
        let mut f = Vec::new();
        put_cmd(
            &mut f,
            LoginGen(7),
            u64::MAX,
            ["t", "alice", "bob✓"],
            b"payload",
        );
        put_cmd_done(&mut f, LoginGen(1 << 63), &[1, 2, 3], -5);
        let data = Msg::Data {
            from: LoginGen(3),
            sid: 9,
        };
        put(&mut f, &data, &[0; 1000]);
        put(&mut f, &Msg::Ended { gen: LoginGen(11) }, b"x");
        let got = read_all(&f, 1 << 20);
        assert_eq!(got.len(), 4);
        let got: Vec<(Msg, Vec<u8>)> = got.into_iter().map(|f| f.expect("a frame")).collect();
        assert!(
            matches!(&got[0].0, Msg::Cmd { from: LoginGen(7), n: u64::MAX, tenant, user, to }
            if tenant == "t" && user == "alice" && to == "bob✓")
        );
        assert_eq!(got[0].1, b"payload");
        assert!(
            matches!(&got[1].0, Msg::CmdDone { gen, ns, code: -5 } if gen.0 == 1 << 63 && ns == &[1, 2, 3])
        );
        assert!(got[1].1.is_empty());
        assert!(matches!(
            got[2].0,
            Msg::Data {
                from: LoginGen(3),
                sid: 9
            }
        ));
        assert_eq!(got[2].1.len(), 1000);
        assert!(matches!(got[3].0, Msg::Ended { gen: LoginGen(11) }));
        assert_eq!(got[3].1, b"x");
    }

    fn read_one(bytes: &[u8], max: usize) -> Option<(Msg, Vec<u8>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read(&mut &bytes[..], max))
    }

    /// A frame whose length says `body.len()`.
    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut good = Vec::new();
        put_cmd(&mut good, LoginGen(1), 1, ["t", "u", "v"], b"");
        // Every truncation (the stream ends early), and every length too short for what the
        // frame holds, is refused, never a panic.
        for cut in 0..good.len() {
            assert!(read_one(&good[..cut], 1 << 20).is_none(), "cut at {cut}");
        }
        for short in 1..good.len() - 4 {
            let f = frame(&good[4..4 + short]);
            assert!(read_one(&f, 1 << 20).is_none(), "length {short}");
        }
        assert!(
            read_one(&good, good.len() - 5).is_none(),
            "over the maximum"
        );
        assert!(read_one(&frame(&[]), 1 << 20).is_none(), "empty");
        assert!(
            read_one(&frame(&[9, 0, 0]), 1 << 20).is_none(),
            "unknown kind"
        );
        // A string length beyond the frame, a count promising more than the frame holds.
        let mut long = vec![CMD];
        long.extend_from_slice(&[0; 16]);
        long.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_one(&frame(&long), 1 << 20).is_none());
        let mut many = vec![CMD_DONE];
        many.extend_from_slice(&[0; 12]);
        many.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_one(&frame(&many), 1 << 20).is_none());
        // Not UTF-8.
        let mut bad = vec![CMD];
        bad.extend_from_slice(&[0; 16]);
        bad.extend_from_slice(&1u32.to_be_bytes());
        bad.push(0xff);
        assert!(read_one(&frame(&bad), 1 << 20).is_none());
        // JSON that is not a message.
        let mut json = vec![JSON];
        json.extend_from_slice(&2u32.to_be_bytes());
        json.extend_from_slice(b"{}");
        assert!(read_one(&frame(&json), 1 << 20).is_none());
    }
}
