//! A raw protocol peer for tests and benchmarks (feature `raw`): [`Codec`] speaks the framing
//! and messages without doing I/O (async peers drive it over their own sockets), and
//! [`RawClient`] is a blocking client on a `TcpStream` built on it. Neither hides anything the
//! protocol does: tests use them to send exactly what a hostile or buggy client would.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::frame::{Decoder, Encoder, Frame, FrameError, Kind, HEADER_LEN, MAX_PAYLOAD_TO_CLIENT};
use crate::msg::{to_json, ClientMsg, Op, Outcome, ServerMsg, UserStatus, PROTOCOL_VERSION};

/// Upper bound for any single wait of a [`RawClient`]; only reached when something is broken.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// What arrives from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A control message and its attachment (a cmd's bytes; usually empty).
    Msg(ServerMsg, Vec<u8>),
    /// A data frame: stream ID and bytes.
    Data(u64, Vec<u8>),
    Ping,
    Pong,
    /// A standalone acknowledgement.
    Ack,
}

/// Framing and messages of one client connection, without I/O.
pub struct Codec {
    enc: Encoder,
    dec: Decoder,
    next_id: u64,
    /// `ack` of the last frame received.
    pub last_ack: u64,
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new()
    }
}

impl Codec {
    pub fn new() -> Codec {
        Codec {
            enc: Encoder::new(),
            dec: Decoder::new(MAX_PAYLOAD_TO_CLIENT),
            next_id: 1,
            last_ack: 0,
        }
    }

    /// A fresh request ID.
    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sequence number the next frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.enc.next_seq()
    }

    /// Highest sequence number received.
    pub fn last_seq(&self) -> u64 {
        self.dec.last_seq()
    }

    /// After a resume that said it had frames up to `last`: the server's replay continues
    /// from `last + 1`.
    pub fn received_up_to(&mut self, last: u64) {
        self.dec.continue_after(last)
    }

    /// The bytes of a control frame carrying `msg` and `attachment`.
    pub fn msg(&mut self, msg: &ClientMsg, attachment: &[u8]) -> Vec<u8> {
        let ack = self.dec.last_seq();
        self.enc.control(ack, &to_json(msg), attachment)
    }

    /// The bytes of request `op` under a fresh ID, and the ID.
    pub fn request(&mut self, op: Op) -> (u64, Vec<u8>) {
        let id = self.id();
        (id, self.msg(&ClientMsg::Req { id, op }, &[]))
    }

    /// The bytes of a frame of `kind` with `payload` as is (data frames, heartbeats, garbage).
    pub fn frame(&mut self, kind: Kind, payload: &[&[u8]]) -> Vec<u8> {
        let ack = self.dec.last_seq();
        self.enc.frame(kind, ack, payload)
    }

    /// A header announcing a 4 GiB control payload, with the right sequence number.
    pub fn huge_length_prefix(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        h[4] = Kind::Control as u8;
        h[8..16].copy_from_slice(&self.enc.next_seq().to_be_bytes());
        h
    }

    /// Room to read received bytes into; report how many with [`Codec::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        self.dec.spare()
    }

    pub fn filled(&mut self, n: usize) {
        self.dec.filled(n)
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.dec.feed(bytes)
    }

    /// The next whole frame received, as is.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let f = self.dec.next_frame()?;
        if let Some(f) = &f {
            self.last_ack = f.ack;
        }
        Ok(f)
    }

    /// The next whole frame received, parsed. A control frame that is not a valid message is
    /// an error (`FrameError::BadControl`).
    pub fn next_incoming(&mut self) -> Result<Option<Incoming>, FrameError> {
        let Some(f) = self.next_frame()? else {
            return Ok(None);
        };
        Ok(Some(match f.kind {
            Kind::Control => {
                let (json, att) = f.control()?;
                let msg = serde_json::from_slice(json).map_err(|_| FrameError::BadControl)?;
                Incoming::Msg(msg, att.to_vec())
            }
            Kind::Data => {
                let sid = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
                Incoming::Data(sid, f.payload[8..].to_vec())
            }
            Kind::Ping => Incoming::Ping,
            Kind::Pong => Incoming::Pong,
            Kind::Ack => Incoming::Ack,
        }))
    }
}

/// A blocking protocol client. Presence pushes that arrive while waiting for something else
/// are kept for [`RawClient::push`], in order; so are cmds for [`RawClient::cmd_in`].
pub struct RawClient {
    pub stream: TcpStream,
    pub codec: Codec,
    pushes: VecDeque<UserStatus>,
    cmds: VecDeque<(u64, String, Vec<u8>)>,
    eof: bool,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::over(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on an already connected stream (e.g. from another source address).
    pub fn over(stream: TcpStream) -> RawClient {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            codec: Codec::new(),
            pushes: VecDeque::new(),
            cmds: VecDeque::new(),
            eof: false,
        }
    }

    /// A fresh request ID.
    pub fn id(&mut self) -> u64 {
        self.codec.id()
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the server");
    }

    pub fn send(&mut self, msg: &ClientMsg) {
        self.send_attached(msg, &[]);
    }

    /// Sends `msg` with a binary attachment (a cmd's bytes).
    pub fn send_attached(&mut self, msg: &ClientMsg, attachment: &[u8]) {
        let bytes = self.codec.msg(msg, attachment);
        self.raw(&bytes);
    }

    /// Sends request `op` under the ID `id`.
    pub fn send_req(&mut self, id: u64, op: Op) {
        self.send(&ClientMsg::Req { id, op });
    }

    pub fn send_kind(&mut self, kind: Kind) {
        let bytes = self.codec.frame(kind, &[]);
        self.raw(&bytes);
    }

    /// Sends only a header announcing a 4 GiB control payload (the server must refuse it from
    /// its length alone).
    pub fn send_huge_length_prefix(&mut self) {
        let h = self.codec.huge_length_prefix();
        self.raw(&h);
    }

    /// The next frame, or `None` at end of stream (a reset counts as the end).
    pub fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.codec.next_frame().expect("server sent a bad frame") {
                return Some(f);
            }
            if self.eof {
                return None;
            }
            let stream = &mut self.stream;
            match stream.read(self.codec.spare()) {
                Ok(0) => self.eof = true,
                Ok(n) => self.codec.filled(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("no frame from the server within {PATIENCE:?}")
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.eof = true,
            }
        }
    }

    /// The next control message and its attachment, answering pings. Panics at end of stream
    /// or on a data frame.
    pub fn msg_attached(&mut self) -> (ServerMsg, Vec<u8>) {
        loop {
            let f = self
                .frame()
                .expect("connection ended while a message was expected");
            match f.kind {
                Kind::Control => {
                    let (json, att) = f.control().unwrap();
                    let msg = serde_json::from_slice(json)
                        .unwrap_or_else(|e| panic!("bad message from the server: {e}"));
                    return (msg, att.to_vec());
                }
                Kind::Ping => self.send_kind(Kind::Pong),
                Kind::Pong | Kind::Ack => {}
                Kind::Data => panic!("unexpected data frame"),
            }
        }
    }

    /// The next control message, answering pings.
    pub fn msg(&mut self) -> ServerMsg {
        self.msg_attached().0
    }

    /// The next message that is neither a presence push nor a cmd; those are kept for
    /// [`RawClient::push`] and [`RawClient::cmd_in`].
    pub fn reply(&mut self) -> ServerMsg {
        loop {
            match self.msg_attached() {
                (ServerMsg::UserStatus(s), _) => self.pushes.push_back(s),
                (ServerMsg::CmdIn { n, from }, data) => self.cmds.push_back((n, from, data)),
                (other, _) => return other,
            }
        }
    }

    /// The next presence push.
    pub fn push(&mut self) -> UserStatus {
        if let Some(s) = self.pushes.pop_front() {
            return s;
        }
        loop {
            match self.msg_attached() {
                (ServerMsg::UserStatus(s), _) => return s,
                (ServerMsg::CmdIn { n, from }, data) => self.cmds.push_back((n, from, data)),
                (other, _) => panic!("expected a status push, got {other:?}"),
            }
        }
    }

    /// The next cmd received: its number, sender and bytes.
    pub fn cmd_in(&mut self) -> (u64, String, Vec<u8>) {
        if let Some(c) = self.cmds.pop_front() {
            return c;
        }
        loop {
            match self.msg_attached() {
                (ServerMsg::CmdIn { n, from }, data) => return (n, from, data),
                (ServerMsg::UserStatus(s), _) => self.pushes.push_back(s),
                (other, _) => panic!("expected a cmd, got {other:?}"),
            }
        }
    }

    /// Pushes received so far and not yet taken.
    pub fn pending_pushes(&self) -> usize {
        self.pushes.len()
    }

    /// Sends `op` under a fresh ID and returns its answer, checking `re` and that the answer's
    /// frame acknowledges the request.
    pub fn request(&mut self, op: Op) -> ServerMsg {
        let id = self.id();
        let seq = self.codec.next_seq();
        self.send_req(id, op);
        let reply = self.reply();
        assert_eq!(re_of(&reply), Some(id), "{reply:?}");
        assert!(
            self.codec.last_ack >= seq,
            "reply acks {} < {seq}",
            self.codec.last_ack
        );
        reply
    }

    /// The code of the answer to `op` (0 for any success).
    pub fn code(&mut self, op: Op) -> i32 {
        match self.request(op) {
            ServerMsg::Res { result, .. } => result.code(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    pub fn hello(&mut self) -> ServerMsg {
        self.send(&ClientMsg::Hello {
            ver: PROTOCOL_VERSION,
            agent: "crvm raw client".into(),
        });
        let w = self.msg();
        assert!(matches!(w, ServerMsg::Welcome { .. }), "{w:?}");
        w
    }

    /// Logs in (after [`RawClient::hello`]) and returns the answer.
    pub fn login(&mut self, app: &str, secret: &str, user: &str, token: &str) -> ServerMsg {
        self.request(login_op(app, secret, user, token))
    }

    /// Asserts that the next message is `Close{code}` and that the stream then ends.
    pub fn expect_close(&mut self, code: i32) {
        match self.msg() {
            ServerMsg::Close { code: c, .. } => assert_eq!(c, code),
            other => panic!("expected Close {code}, got {other:?}"),
        }
        self.expect_eof();
    }

    /// Asserts that nothing but heartbeats comes before the end of the stream.
    pub fn expect_eof(&mut self) {
        while let Some(f) = self.frame() {
            assert!(
                matches!(f.kind, Kind::Ping | Kind::Pong | Kind::Ack),
                "frame before EOF: {f:?}"
            );
        }
    }

    /// The online users of the caller's tenant.
    pub fn statuses(&mut self) -> Vec<UserStatus> {
        match self.request(Op::GetUserStatus) {
            ServerMsg::Res {
                result: Outcome::Statuses(list),
                ..
            } => list,
            other => panic!("{other:?}"),
        }
    }
}

/// A login request.
pub fn login_op(app: &str, secret: &str, user: &str, token: &str) -> Op {
    Op::Login {
        app_id: app.into(),
        secret: secret.into(),
        user_id: user.into(),
        nick: String::new(),
        token: token.into(),
        resume: false,
    }
}

/// The `re` of an answer.
pub fn re_of(m: &ServerMsg) -> Option<u64> {
    match m {
        ServerMsg::Res { re, .. } => Some(*re),
        _ => None,
    }
}
